"""Failures to read or decode a sample that name the sample: file and dataset index.

:class:`NamedSamplePipeline` wraps a dataset's pipeline. An exception inside it becomes a
:class:`BadSampleError` whose message gives the dataset, the index and the file, e.g.
``CocoDataset[17] (data/coco/train2017/000000000139.jpg): AssertionError: failed to load
image``. In skip mode it logs the sample instead and returns None, which makes mmengine's
``BaseDataset`` use another sample; the skipped and read counts are shared with the main
process through shared memory when the dataloader workers are forked (the default of our
configs); workers started by spawn still log each skipped sample but do not count it.
"""
import logging
import multiprocessing
from typing import Optional

from mmengine.logging import print_log

_FILE_KEYS = ('img_path', 'seg_map_path', 'filename')


class BadSampleError(RuntimeError):
    """A sample that cannot be read or decoded; the message names it."""


def describe_sample(dataset_name: str, results: dict) -> str:
    """``Dataset[index] (file)`` for a pipeline's input dict."""
    index = results.get('sample_idx', '?')
    files = [str(results[k]) for k in _FILE_KEYS if results.get(k)]
    return f'{dataset_name}[{index}] ({", ".join(files) or "no file name"})'


class SampleCounts:
    """Samples read, failures, and which samples failed; shared with forked workers.

    Args:
        num_samples (int): Number of samples (over all the datasets counted here).
    """

    def __init__(self, num_samples: int):
        context = multiprocessing.get_context('fork')
        self._read = context.Value('q', 0)
        self._failures = context.Value('q', 0)
        self._failed = context.Array('b', max(num_samples, 1), lock=False)

    def add(self, index: Optional[int] = None) -> None:
        """Count a sample read; ``index``: the sample failed."""
        with self._read.get_lock():
            self._read.value += 1
            if index is not None:
                self._failures.value += 1
                self._failed[index] = 1

    @property
    def read(self) -> int:
        """Samples read (failures included)."""
        return self._read.value

    @property
    def failures(self) -> int:
        """Failed reads (a failing sample drawn twice counts twice)."""
        return self._failures.value

    @property
    def failed_samples(self) -> int:
        """Distinct samples that failed."""
        return sum(self._failed)


class NamedSamplePipeline:
    """A dataset pipeline whose failures name the sample.

    Args:
        pipeline (callable): The dataset's pipeline.
        dataset_name (str): Name used in messages (e.g. the dataset class).
        skip (bool): Log and skip failing samples instead of raising. Defaults to False.
        counts (SampleCounts, optional): Where read and skipped samples are counted.
        offset (int): Index of this dataset's first sample in ``counts``. Defaults to 0.
    """

    def __init__(self, pipeline, dataset_name: str, skip: bool = False,
                 counts: Optional[SampleCounts] = None, offset: int = 0):
        self.pipeline = pipeline
        self.dataset_name = dataset_name
        self.skip = skip
        self.counts = counts
        self.offset = offset

    def __call__(self, results: dict):
        # Read before the transforms change the dict.
        where = describe_sample(self.dataset_name, results)
        index = self.offset + int(results.get('sample_idx', 0))
        try:
            data = self.pipeline(results)
        except Exception as err:
            message = f'cannot load {where}: {type(err).__name__}: {err}'
            if not self.skip:
                raise BadSampleError(message) from err
            print_log(f'skipped sample: {message}', logger='current', level=logging.WARNING)
            self._count(index)
            return None
        self._count(None)
        return data

    def _count(self, failed_index: Optional[int]) -> None:
        if self.counts is not None:
            self.counts.add(failed_index)

    def __getstate__(self):
        # Shared counters cannot be pickled (workers started by spawn): such workers still
        # log each skipped sample but do not count it.
        return dict(self.__dict__, counts=None)

    def __getattr__(self, name):  # e.g. ``dataset.pipeline.transforms``
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)
