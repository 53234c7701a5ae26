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
    import logging

    from fraud_detection import runtime
    from ops import deploy

    runtime.setup_logging()
    log = logging.getLogger("deploy")
    serving_uri = str(decision.metadata.get("serving_uri", ""))
    if not serving_uri:
        raise runtime.fail("deploy", ValueError("the promotion decision carries no serving_uri: nothing to deploy"))
    if deploy_target == "local":
        log.info("champion exported to %s; `fraud serve` serves it", serving_uri)
        return serving_uri
    if deploy_target != "kserve":
        raise runtime.fail("deploy", ValueError(f"deploy_target must be 'local' or 'kserve', got {deploy_target!r}"))

    from kserve import KServeClient
    from kubernetes import config
    from kubernetes.client.rest import ApiException

    config.load_incluster_config()
    api = KServeClient().api_instance
    try:
        existing = api.get_namespaced_custom_object(
            deploy.GROUP, deploy.VERSION, isvc_namespace, deploy.PLURAL, isvc_name
        )
    except ApiException as error:
        if error.status != 404:
            raise
        body = deploy.new_inference_service(isvc_name, isvc_namespace, serving_uri, serving_image)
        api.create_namespaced_custom_object(deploy.GROUP, deploy.VERSION, isvc_namespace, deploy.PLURAL, body)
        log.info("created InferenceService %s/%s at %s", isvc_namespace, isvc_name, serving_uri)
        return serving_uri
    body = deploy.updated_inference_service(existing, serving_uri, canary_traffic_percent)
    api.replace_namespaced_custom_object(deploy.GROUP, deploy.VERSION, isvc_namespace, deploy.PLURAL, isvc_name, body)
    log.info(
        "InferenceService %s/%s now serves %s (canary %d%%)",
        isvc_namespace,
        isvc_name,
        serving_uri,
        canary_traffic_percent,
    )
    return serving_uri
