"""Dataloader over a :class:`~recbole_dnr.data.dataset.RequestSet`: batches of whole lists."""

import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader

from recbole_dnr.distributed import shard


class ListDataLoader(AbstractDataLoader):
    """Yields ``Interaction`` batches of ``batch_size`` requests (``[B, n]`` list tensors).

    Shuffling uses RecBole's seeded generator, so the batch order is a function of ``seed``.
    With ``fast_path`` (default) a batch is one ``index_select`` per field of the split's
    contiguous tensors, in exactly the order torch's ``DataLoader`` over RecBole's index list
    would give (it draws from the generator the same way); ``fast_path: False`` iterates
    through that ``DataLoader`` (one Python int per request).

    In a distributed run every rank draws the same permutation and yields its contiguous part of
    each global batch (:func:`recbole_dnr.distributed.shard`), instead of RecBole's
    ``DistributedSampler``, which pads the last shard with repeated lists: an epoch shows each
    list once across ranks, and the effective batch stays ``batch_size``.
    """

    def __init__(self, config, dataset, batch_size, shuffle=False):
        self._list_batch_size = batch_size
        super().__init__(config, dataset, sampler=None, shuffle=shuffle)
        self._distributed = not config["single_spec"]
        if self._distributed:
            self.step = self._list_batch_size  # RecBole divided it by the world size for its sampler
        self._fast = self._distributed or (bool(config["fast_path"]) and not config["worker"])

    def _init_batch_size_and_step(self):
        self.step = self._list_batch_size
        self.set_batch_size(self._list_batch_size)

    @property
    def requests(self):
        """The :class:`~recbole_dnr.data.request_set.RequestSet` this loader slices batches from."""
        return self._dataset

    @property
    def sample_size(self):
        return len(self._dataset)

    def collate_fn(self, index):
        return self._dataset[index]

    def __len__(self):
        if not self._fast:
            return super().__len__()
        return -(-self.sample_size // self.step)

    def __iter__(self):
        if not self._fast:
            return super().__iter__()
        return self._slices()

    def positions(self):
        """Index ``[N_r]`` in the split of each list this rank yields, in order (unshuffled loaders)."""
        n = self.sample_size
        parts = [torch.arange(lo, min(lo + self.step, n))[self._part(min(self.step, n - lo))]
                 for lo in range(0, n, self.step)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)

    def _part(self, n):
        return shard(n) if self._distributed else slice(0, n)

    def _slices(self):
        # torch's DataLoader draws a base seed at iterator creation, then RandomSampler draws one
        # permutation per pass and one more (sliced to nothing) when it is exhausted.
        n = self.sample_size
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for lo in range(0, n, self.step):
            if order is None:  # a slice: views of the split's tensors, no copy
                part = self._part(min(self.step, n - lo))
                yield self._dataset[slice(lo + part.start, lo + part.stop)]
            else:
                idx = order[lo: lo + self.step]
                yield self._dataset[idx[self._part(len(idx))]]
        if self.shuffle:
            torch.randperm(n, generator=self.generator)
