"""Hooks that inject faults into a training run, for the long-run tests. Imported by the
tools through ``custom_imports=dict(imports=['fault_injection'])`` (tests/tools on
PYTHONPATH)."""
import hashlib
import json
import os
import signal
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class SignalDuringSave(Hook):
    """Send SIGTERM to this process while the checkpoint of ``iteration`` is being written
    (between the checkpoint's assembly and its file write).

    Args:
        iteration (int): 1-based iteration whose checkpoint is interrupted.
    """

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] == self.iteration and self.iteration:
            self.iteration = None  # once
            print(f'fault_injection: SIGTERM while writing iteration {checkpoint["meta"]["iter"]}',
                  flush=True)
            os.kill(os.getpid(), signal.SIGTERM)


@HOOKS.register_module(force=True)
class NaNLossAt(Hook):
    """Make the total loss and ``loss_nan`` NaN at the given 1-based iterations.

    Args:
        iterations (list[int]): Iterations whose loss is NaN.
    """

    priority = 'HIGHEST'

    def __init__(self, iterations):
        self.iterations = set(iterations)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = getattr(runner.model, 'module', runner.model)
        model.__dict__.pop('parse_losses', None)
        if runner.iter + 1 not in self.iterations:
            return
        parse_losses = model.parse_losses

        def nan_losses(losses):
            loss, log_vars = parse_losses(losses)
            log_vars['loss_nan'] = float('nan')
            return loss * float('nan'), log_vars

        model.parse_losses = nan_losses


@HOOKS.register_module(force=True)
class WeightDigests(Hook):
    """Write ``weight_digests.json`` in the work dir: per iteration, a digest of the
    weights and of the optimizer state, and whether all weights are finite."""

    priority = 'LOWEST'

    def __init__(self):
        self.digests = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = getattr(runner.model, 'module', runner.model)
        weights = hashlib.sha1()
        finite = True
        for tensor in model.state_dict().values():
            weights.update(tensor.detach().cpu().numpy().tobytes())
            if tensor.is_floating_point():
                finite = finite and bool(tensor.isfinite().all())
        optimizer = hashlib.sha1()
        for state in runner.optim_wrapper.optimizer.state.values():
            for value in state.values():
                optimizer.update(value.detach().cpu().numpy().tobytes())
        self.digests[runner.iter + 1] = dict(weights=weights.hexdigest(),
                                             optimizer=optimizer.hexdigest(), finite=finite)
        with open(os.path.join(runner.work_dir, 'weight_digests.json'), 'w') as f:
            json.dump(self.digests, f)


@HOOKS.register_module(force=True)
class WritePid(Hook):
    """Write ``pid_rank<RANK>`` (this process's id) in the work dir when training starts."""

    def before_train(self, runner):
        with open(os.path.join(runner.work_dir, f'pid_rank{runner.rank}'), 'w') as f:
            f.write(str(os.getpid()))


@HOOKS.register_module(force=True)
class SignalDuringValidation(Hook):
    """Send SIGTERM to this process at the first validation batch (once)."""

    def __init__(self):
        self.sent = False

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if not self.sent:
            self.sent = True
            print('fault_injection: SIGTERM during validation', flush=True)
            os.kill(os.getpid(), signal.SIGTERM)


@HOOKS.register_module(force=True)
class SignalGroupAfter(Hook):
    """Send SIGTERM to this process's whole group (its dataloader workers too, as slurm
    does) after the given 1-based iteration. Run the tool in a session of its own.

    Args:
        iteration (int): Iteration after which the signal is sent.
    """

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            print(f'fault_injection: SIGTERM to the process group after iteration '
                  f'{self.iteration}', flush=True)
            os.killpg(os.getpgid(0), signal.SIGTERM)


@HOOKS.register_module(force=True)
class PauseWhileWriting(Hook):
    """Stop for good halfway through writing the checkpoint of ``iteration`` (half its
    bytes flushed to the file), after printing ``fault_injection: paused while writing
    <file>``: the test kills the process there.

    Args:
        iteration (int): 1-based iteration whose checkpoint write is paused.
    """

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] != self.iteration:
            return
        from mmengine.fileio.backends import LocalBackend

        def half_put(backend, obj, filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                print(f'fault_injection: paused while writing {filepath}', flush=True)
                time.sleep(600)

        LocalBackend.put = half_put


@HOOKS.register_module(force=True)
class RecordSamples(Hook):
    """Append each training iteration's samples (image file name, flipped or not) to
    ``samples_rank<RANK>.jsonl`` in the work dir: one line ``{"iter": n, "samples": [...]}``
    per iteration."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = [[os.path.basename(s.img_path), bool(s.flip)]
                   for s in data_batch['data_samples']]
        with open(os.path.join(runner.work_dir, f'samples_rank{runner.rank}.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, samples=samples)) + '\n')
