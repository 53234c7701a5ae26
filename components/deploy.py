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
) -> str:
    """Deploy the model the promotion ``decision`` exported (its ``serving_uri`` metadata).

    ``local``: the export is the deployment (``fraud serve`` reads the champion link); ``kserve``: create or
    update the InferenceService through the KServe SDK client with the pod's service account."""
    from components import runner
    from fraud_detection.config import DeployKnobs
    from ops.deploy import deploy_champion

    with runner.step("deploy"):
        return deploy_champion(str(decision.metadata.get("serving_uri", "")), DeployKnobs.pick(locals()))
