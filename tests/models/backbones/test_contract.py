"""Every registered backbone keeps the contract (:mod:`contract`): covered by being
registered, and known to every consumer of the registration."""
import pytest

import cvt_dense  # noqa: F401  (registers the toolkit into the OpenMMLab registries)
from contract import BackboneContract
from cvt_dense.models import registered_backbones


class TestRegisteredBackbones(BackboneContract):

    @pytest.fixture(params=registered_backbones(), ids=lambda info: info.cls.__name__)
    def backbone(self, request):
        return request.param


@pytest.mark.parametrize('info', registered_backbones(), ids=lambda info: info.cls.__name__)
def test_registration_reaches_the_registries_and_the_weight_loader(info):
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    from cvt_dense.weights import get_spec
    for registry in (DET_MODELS, SEG_MODELS, ROOT_MODELS):
        assert registry.module_dict[info.cls.__name__] is info.cls
    assert get_spec(info.cls.__name__) is info.cls.checkpoint_spec
    assert info.name == info.cls.__name__.lower()


def test_the_shipped_backbones_are_registered_first():
    assert [info.name for info in registered_backbones()][:2] == ['cvt', 'convit']
