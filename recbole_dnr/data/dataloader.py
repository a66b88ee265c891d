"""Dataloader over a :class:`~recbole_dnr.data.dataset.RequestSet`: batches of whole lists."""

from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader


class ListDataLoader(AbstractDataLoader):
    """Yields ``Interaction`` batches of ``batch_size`` requests (``[B, n]`` list tensors).

    Shuffling uses RecBole's seeded generator, so the batch order is a function of ``seed``.
    """

    def __init__(self, config, dataset, batch_size, shuffle=False):
        self._list_batch_size = batch_size
        super().__init__(config, dataset, sampler=None, shuffle=shuffle)

    def _init_batch_size_and_step(self):
        self.step = self._list_batch_size
        self.set_batch_size(self._list_batch_size)

    @property
    def sample_size(self):
        return len(self._dataset)

    def collate_fn(self, index):
        return self._dataset[index]
