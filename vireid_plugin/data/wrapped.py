"""A dataset seen through a wrapper that changes how items load, nothing else."""
import torch


class WrappedDataset(torch.utils.data.Dataset):
    """Holds ``self.dataset``; its length and every attribute the wrapper does not define
    (``train``, ``data``, ``transform``, ...) are the wrapped dataset's. Subclasses define
    ``__getitem__``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset':   # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
