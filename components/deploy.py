"""Component ``deploy``: point the champion's InferenceService at the newly promoted model directory."""

from kfp import dsl
from kfp.dsl import Input, Markdown

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def deploy_model(
    decision: Input[Markdown],
    deploy_target: str,
    isvc_name: str,
    isvc_namespace: str,
    serving_image: str,
    canary_traffic_percent: int,
    serving_root: str,
) -> str:
    """Deploy the champion of record under ``serving_root`` (the promotion ``decision``'s export when none exists).

    It deploys what the champion pointer names when it runs, not this run's own export, and again if the pointer
    moves meanwhile, so deploys of racing promotions end on the last champion and a retry is safe.

    ``local``: the export is the deployment (``fraud serve`` reads the champion link); ``kserve``: create or
    update the InferenceService through the KServe SDK client with the pod's service account."""
    from components import runner
    from fraud_detection.config import DeployKnobs
    from ops.deploy import deploy_pointer

    with runner.step("deploy"):
        knobs = DeployKnobs(
            serving_root=serving_root,
            deploy_target=deploy_target,  # type: ignore[arg-type]  # text from KFP; the model checks the choice
            isvc_name=isvc_name,
            isvc_namespace=isvc_namespace,
            serving_image=serving_image,
            canary_traffic_percent=canary_traffic_percent,
        )
        return deploy_pointer(knobs.serving_root, str(decision.metadata.get("serving_uri", "")), knobs)
