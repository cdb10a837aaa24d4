"""How a step that calls the API gets its client: refused while the guard holds, at the pace the last
run learned, which it leaves for the next (as the pace moves, and once more when the client closes:
a run that dies mid-fetch leaves what it had learned too). Shared by every step that calls an endpoint."""

from dagster import AssetExecutionContext

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.api.ledger import CallHooks
from pgy_pipeline.api.pacing import AdaptivePacer, PaceState
from pgy_pipeline.orchestration.guard import raise_if_guarded
from pgy_pipeline.orchestration.pace_memory import read_pace, write_pace
from pgy_pipeline.orchestration.raw_pages import ApiAccess
from pgy_pipeline.orchestration.resources import PgyApiResource


def api_access(context: AssetExecutionContext, pgy_api: PgyApiResource) -> ApiAccess:
    """The step's way to its client (see :class:`~pgy_pipeline.orchestration.raw_pages.ApiAccess`)."""
    pace_at = f"{pgy_api.data_source}:{pgy_api.base_url}"

    def keep_pace(state: PaceState) -> None:
        try:
            write_pace(context.instance, pace_at, state)
        except Exception as exc:  # best effort mid-fetch: the write when the client closes still counts
            context.log.warning(f"the learned pace was not saved this time: {exc}")

    def open_client(hooks: CallHooks) -> PgyClient:
        raise_if_guarded(context.instance)
        return pgy_api.get_client(
            learned=read_pace(context.instance, pace_at), hooks=hooks, on_pace=keep_pace
        )

    def close_client(client: PgyClient) -> None:
        if isinstance(client.pacer, AdaptivePacer):
            write_pace(context.instance, pace_at, client.pacer.state())

    return ApiAccess(open_client, close_client, context.log.info)
