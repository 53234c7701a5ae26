"""KFP v2 components: one module per pipeline step, each a thin wrapper over ``fraud_detection.steps``.

Components run in the components image (``components/Dockerfile``); ``install_kfp_package=False``
because the image already has the pinned kfp. ``fraud compile --components-image REF`` rewrites the image
in the compiled YAML (CD passes the image built for the commit).
"""

from fraud_detection import __version__

COMPONENTS_IMAGE = f"fraud-detection-components:{__version__}"
"""Placeholder image reference; replaced at compile time on CI/CD with the registry path and commit tag."""
