from .simple_fpn import CvtDenseSimpleFPN

__all__ = ['CvtDenseSimpleFPN']
