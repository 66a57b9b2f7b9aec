"""``BadSampleHook``: unreadable samples are named (file, index) or, opt-in, skipped and
counted, with a bound on the fraction skipped."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..sample_errors import BadSampleError, NamedSamplePipeline, SampleCounts
from ..mmengine_internals import built_loop
from ..train_state import restart_train_iterator


def leaf_datasets(dataset):
    """The datasets holding a pipeline inside wrappers (Concat, Repeat, ClassBalanced)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for d in dataset.datasets for leaf in leaf_datasets(d)]
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'pipeline'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def name_failures(dataset, skip: bool = False, counts=None) -> None:
    """Wrap the pipelines of ``dataset`` in :class:`NamedSamplePipeline` (once)."""
    offset = 0
    for leaf in leaf_datasets(dataset):
        if hasattr(leaf, 'pipeline') and not isinstance(leaf.pipeline, NamedSamplePipeline):
            leaf.pipeline = NamedSamplePipeline(leaf.pipeline, type(leaf).__name__, skip,
                                                counts, offset)
        offset += len(leaf)


@HOOKS.register_module(force=True)
class BadSampleHook(Hook):
    """Name the sample (dataset, index, file) in any failure to read or decode it.

    Always on for the training, validation and test datasets. With ``skip=True`` (for
    long runs) a training sample that fails is logged with its name and replaced by
    another one (mmengine's ``BaseDataset`` re-draws), and the run stops with
    :class:`BadSampleError` when more than ``max_skip_fraction`` of the samples read so far
    (once at least ``min_samples`` were read) failed. The number of distinct samples
    skipped is reported at the end of each epoch and of the run.

    Args:
        skip (bool): Skip failing training samples instead of stopping. Defaults to False.
        max_skip_fraction (float): Largest tolerated fraction of skipped samples. Defaults
            to 0.01.
        min_samples (int): Samples read before the fraction is checked. Defaults to 100.
    """

    def __init__(self, skip: bool = False, max_skip_fraction: float = 0.01,
                 min_samples: int = 100):
        self.skip = skip
        self.max_skip_fraction = max_skip_fraction
        self.min_samples = min_samples
        self.counts = None

    def before_run(self, runner) -> None:
        for kind in ('val', 'test'):
            loop = built_loop(runner, kind)
            if loop is not None:
                name_failures(loop.dataloader.dataset)
        loop = built_loop(runner, 'train')
        if loop is None:
            return
        dataset = loop.dataloader.dataset
        self.counts = SampleCounts(sum(len(d) for d in leaf_datasets(dataset)))
        name_failures(dataset, self.skip, self.counts)
        if isinstance(loop, IterBasedTrainLoop) and loop.dataloader.num_workers > 0:
            # Its workers were forked with the loop, before the pipeline was wrapped.
            restart_train_iterator(loop)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        counts = self.counts
        if counts is None or not counts.failures or counts.read < self.min_samples:
            return
        if counts.failures > self.max_skip_fraction * counts.read:
            raise BadSampleError(
                f'{counts.failures} of {counts.read} training samples read could not be '
                f'loaded (more than max_skip_fraction={self.max_skip_fraction}); the log '
                f'names each; check the data with tools/check_dataset.py')

    def after_train_epoch(self, runner) -> None:
        self._report(runner)

    def after_train(self, runner) -> None:
        self._report(runner)

    def _report(self, runner) -> None:
        counts = self.counts
        if counts is not None and counts.failures:
            runner.logger.warning(
                f'skipped {counts.failed_samples} unreadable training samples '
                f'({counts.failures} failed reads of {counts.read})')
