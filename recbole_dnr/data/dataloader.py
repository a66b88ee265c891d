"""Dataloader over a :class:`~recbole_dnr.data.dataset.RequestSet`: batches of whole lists."""

import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader


class ListDataLoader(AbstractDataLoader):
    """Yields ``Interaction`` batches of ``batch_size`` requests (``[B, n]`` list tensors).

    Shuffling uses RecBole's seeded generator, so the batch order is a function of ``seed``.
    With ``fast_path`` (default) a batch is one ``index_select`` per field of the split's
    contiguous tensors, in exactly the order torch's ``DataLoader`` over RecBole's index list
    would give (it draws from the generator the same way); ``fast_path: False`` iterates
    through that ``DataLoader`` (one Python int per request).
    """

    def __init__(self, config, dataset, batch_size, shuffle=False):
        self._list_batch_size = batch_size
        super().__init__(config, dataset, sampler=None, shuffle=shuffle)
        self._fast = bool(config["fast_path"]) and config["single_spec"] and not config["worker"]

    def _init_batch_size_and_step(self):
        self.step = self._list_batch_size
        self.set_batch_size(self._list_batch_size)

    @property
    def sample_size(self):
        return len(self._dataset)

    def collate_fn(self, index):
        return self._dataset[index]

    def __iter__(self):
        if not self._fast:
            return super().__iter__()
        return self._slices()

    def _slices(self):
        # torch's DataLoader draws a base seed at iterator creation, then RandomSampler draws one
        # permutation per pass and one more (sliced to nothing) when it is exhausted.
        n = self.sample_size
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for lo in range(0, n, self.step):
            yield self._dataset[order[lo: lo + self.step]] if order is not None else self._dataset[lo: lo + self.step]
        if self.shuffle:
            torch.randperm(n, generator=self.generator)
