"""The non-public Dagster APIs the pipeline relies on: these fail loudly if an upgrade changes them."""

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DagsterInstance,
    Failure,
    MultiPartitionKey,
    asset,
    instance_for_test,
    materialize,
)

from pgy_pipeline.orchestration import dagster_internals as internals
from pgy_pipeline.orchestration.partitions import note_partitions


def test_values_round_trip_through_the_instance_storage_and_survive_a_reopen(tmp_path):
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert internals.read_value(instance, "pgy_pipeline/test") is None
        internals.write_value(instance, "pgy_pipeline/test", '{"a": 1}')
        ref = instance.get_ref()
    with DagsterInstance.from_ref(ref) as reopened:
        assert internals.read_value(reopened, "pgy_pipeline/test") == '{"a": 1}'
        internals.write_value(reopened, "pgy_pipeline/test", "")
        assert internals.read_value(reopened, "pgy_pipeline/test") is None


def test_range_tags_run_one_step_over_every_partition_in_the_range(tmp_path):
    seen: list[list[str]] = []

    @asset(partitions_def=note_partitions, backfill_policy=BackfillPolicy.single_run())
    def probe(context: AssetExecutionContext) -> None:
        seen.append(sorted(str(k) for k in context.partition_keys))

    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("creators", ["a" * 24, "b" * 24])
        tags = {
            internals.ASSET_PARTITION_RANGE_START_TAG: f"{'a' * 24}|2026-11-01",
            internals.ASSET_PARTITION_RANGE_END_TAG: f"{'b' * 24}|2026-11-01",
        }
        assert materialize([probe], instance=instance, tags=tags).success
    assert seen == [[f"{'a' * 24}|2026-11-01", f"{'b' * 24}|2026-11-01"]]
    assert MultiPartitionKey({"creator": "a" * 24, "date": "2026-11-01"}) == f"{'a' * 24}|2026-11-01"


def test_run_tags_can_be_added_and_failure_causes_walked(tmp_path):
    @asset
    def failing() -> None:
        try:
            raise ValueError("the root cause")
        except ValueError as exc:
            raise Failure("the step failed") from exc

    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize([failing], instance=instance, raise_on_error=False)
        assert not result.success
        internals.tag_run(instance, result.run_id, {"pgy/failure": "x"})
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags["pgy/failure"] == "x"
        failures = [e for e in result.all_events if e.is_step_failure]
        messages = list(internals.error_messages(failures))
    assert any("the step failed" in m for m in messages)
    assert any("the root cause" in m for m in messages)
