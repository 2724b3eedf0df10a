"""Attribution methods and the registry that names them."""

from .registry import REGISTRY, Family, MethodSpec, get_method

__all__ = ["REGISTRY", "Family", "MethodSpec", "get_method"]
