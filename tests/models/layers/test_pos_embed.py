"""The exportable antialiased bicubic resampling equals timm's (PyTorch's) everywhere."""
import pytest
import torch
from timm.layers import resample_abs_pos_embed

from cvt_dense.models.layers.pos_embed import resample_tokens_bicubic_aa


@pytest.mark.parametrize('new_size', [(15, 20), (50, 84), (14, 14), (7, 9), (3, 40), (1, 1)],
                         ids=['up', 'detection-size', 'same', 'down', 'mixed', 'one'])
def test_matches_timm_resample_abs_pos_embed(new_size):
    pos_embed = torch.randn(1, 14 * 14, 8, generator=torch.Generator().manual_seed(0))
    expected = resample_abs_pos_embed(pos_embed, new_size, (14, 14), num_prefix_tokens=0)
    torch.testing.assert_close(resample_tokens_bicubic_aa(pos_embed, (14, 14), new_size),
                               expected, atol=1e-5, rtol=1e-5)
