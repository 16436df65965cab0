"""The image the pipeline steps run in on a cluster: ZenML's ``DockerSettings``, shared by every pipeline.

On a stack with a remote orchestrator (``fraud_k8s``) ZenML builds this image with the stack's image
builder (Kaniko, in the cluster: no Docker engine on the submitting machine) and pushes it to the
stack's registry; the local orchestrator ignores it. What goes in:

* ZenML's parent image for this ZenML and Python (``zenmldocker/zenml:0.98.0-py3.11``);
* ``libgomp1`` from apt: the OpenMP runtime LightGBM and XGBoost load (the slim parent lacks it);
* ``requirements.lock``, installed with uv: the exact versions the project is tested with, which
  include every package the stack's integrations need (kubernetes, s3, mlflow, evidently, bentoml;
  ``tests/infra/test_stacks.py`` checks it) -- so ZenML's unpinned integration requirements are not
  added on top (``install_stack_requirements=False``). A ``gs://`` or ``az://`` artifact store needs
  gcsfs or adlfs pinned in requirements.txt first;
* no source files: the code of each run is uploaded to the artifact store and downloaded by the step
  pods, so the image is rebuilt only when the lock changes, and nothing of the checkout (state,
  data, virtual environment) can end up in it.

This is a different image from the scoring service's (a Bento, see ``service/bentofile.yaml``).
"""

from __future__ import annotations

from zenml.config import DockerSettings

from fraud_detection.paths import PROJECT_ROOT

STEP_IMAGE = DockerSettings(
    requirements=str(PROJECT_ROOT / "requirements.lock"),
    install_stack_requirements=False,
    apt_packages=["libgomp1"],
    python_package_installer="uv",
    allow_including_files_in_images=False,
    allow_download_from_artifact_store=True,
)

#: ``@pipeline(settings=PIPELINE_SETTINGS)`` on every pipeline.
PIPELINE_SETTINGS = {"docker": STEP_IMAGE}
