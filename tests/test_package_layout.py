"""The package's layering: plain use of the models loads no training machinery, and no two
of the toolkit's packages import each other."""
import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'cvt_dense'
TRAINING_MODULES = ('cvt_dense.runtime', 'cvt_dense.cli', 'cvt_dense.optim',
                    'cvt_dense.analysis', 'cvt_dense.datasets', 'cvt_dense.deploy')

PROBE = '''
import json, sys, torch
# torch adds safe globals of its own when some of its modules load (DTensor, dynamo):
# load what the toolkit's models use first, so that only the toolkit's own changes show.
import mmcv.cnn, mmdet.registry, mmengine.model, mmseg.registry, timm.layers
before = sorted(map(repr, torch.serialization.get_safe_globals()))
import cvt_dense.models
import cvt_dense  # what custom_imports does: registers the models too
model = cvt_dense.models.CvT(dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3],
                                  depths=[1, 1, 1]))
after = sorted(map(repr, torch.serialization.get_safe_globals()))
print(json.dumps(dict(changed=before != after, modules=sorted(sys.modules))))
'''


def test_plain_use_of_the_models_loads_no_training_machinery():
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                         check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert not report['changed'], 'importing cvt_dense.models changed torch safe globals'
    loaded = [m for m in report['modules'] if m.startswith(TRAINING_MODULES)]
    assert not loaded, f'importing cvt_dense.models loaded {loaded}'
    assert 'cvt_dense.models.backbones.cvt.model' in report['modules']  # the probe ran


def _package_of(module: str) -> str:
    parts = module.split('.')
    return '.'.join(parts[:2]) if len(parts) > 1 else module


def _imports(path: Path) -> set:
    """Toolkit modules a file imports (absolute and relative), at any depth."""
    module = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if path.name == '__init__.py':
        module = module.rsplit('.', 1)[0] + '.__init__'
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split('.')[:-node.level]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith('cvt_dense.')}


def package_graph() -> dict:
    """Toolkit package (``cvt_dense.X``) -> the other toolkit packages it imports."""
    graph = defaultdict(set)
    for path in PACKAGE.rglob('*.py'):
        source = _package_of('.'.join(path.relative_to(PACKAGE.parent).parts))
        for target in map(_package_of, _imports(path)):
            if target != source:
                graph[source].add(target)
    return graph


def test_no_import_cycle_between_the_toolkit_packages():
    graph = package_graph()
    assert graph['cvt_dense.cli'] >= {'cvt_dense.runtime'}  # the graph is read at all
    state = {}

    def visit(node, path):
        if state.get(node) == 'open':
            raise AssertionError('import cycle: ' + ' -> '.join(path + [node]))
        if state.get(node) == 'done':
            return
        state[node] = 'open'
        for target in sorted(graph.get(node, ())):
            visit(target, path + [node])
        state[node] = 'done'

    for node in sorted(graph):
        visit(node, [])


def test_models_and_weights_import_nothing_above_them():
    graph = package_graph()
    assert graph['cvt_dense.models'] <= {'cvt_dense.weights'}
    assert not graph['cvt_dense.weights']
