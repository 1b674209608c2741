"""The registry's fixtures (tiny models, a registry over a temp store and BentoML home) for the service's tests."""

from tests.registry.conftest import bentoml_home, registry, settings, tiny_models

__all__ = ["bentoml_home", "registry", "settings", "tiny_models"]
