import itertools

import orjson

from tidepool.pipeline.sensors import SensorFleet
from tidepool.pipeline.up import UpOptions, agent_config_text


def test_messages_have_the_tutorial_shape_by_default() -> None:
    fleet = SensorFleet(3, station_tag=False, event_time=False, seed=1)
    doc = orjson.loads(fleet.message()[0])
    assert set(doc) == {"pressure", "temperature", "visibility"}
    assert all(isinstance(v, float) for v in doc.values())


def test_readings_walk_within_their_ranges_and_do_not_jump() -> None:
    fleet = SensorFleet(1, station_tag=True, event_time=True, seed=7)
    docs = [orjson.loads(fleet.message()[0]) for _ in range(5000)]
    assert all(0 <= d["pressure"] <= 10 and 0 <= d["temperature"] <= 100 and 0 <= d["visibility"] <= 100 for d in docs)
    steps = [abs(b["temperature"] - a["temperature"]) for a, b in itertools.pairwise(docs)]
    assert max(steps) < 6  # a random walk, not uniform noise over 0–100
    assert len({d["temperature"] for d in docs}) > 100


def test_event_times_strictly_increase_per_station_and_keys_name_the_station() -> None:
    fleet = SensorFleet(4, station_tag=True, event_time=True, seed=3)
    last: dict[str, int] = {}
    for _ in range(20_000):
        value, key = fleet.message()
        doc = orjson.loads(value)
        assert key.decode() == doc["station_id"]
        assert doc["time"] > last.get(doc["station_id"], 0)
        last[doc["station_id"]] = doc["time"]
    assert len(last) == 4


def test_the_generated_agent_config_is_the_tutorials_with_event_time_and_station_tag() -> None:
    import tomllib

    config = tomllib.loads(agent_config_text(UpOptions(brokers="127.0.0.1:19092", db_url="http://127.0.0.1:18902")))
    consumer = config["inputs"]["kafka_consumer"][0]
    assert consumer["brokers"] == ["127.0.0.1:19092"]
    assert consumer["topics"] == ["oceanic"]
    assert consumer["tag_keys"] == ["station_id"]
    http = config["outputs"]["http"][0]
    assert http["url"] == "http://127.0.0.1:18902/api/v1/write?db=public"
    assert http["data_format"] == "influx"
