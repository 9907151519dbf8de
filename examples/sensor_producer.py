"""The tutorial's sensor producer (Kafka → Telegraf → CnosDB), with its two bugs fixed.

Fixed: `random_temp_cels()` was never defined (the function is `random_tempreture()`), and `rang(2000)` is
`range(2000)`. The broker address placeholder `ip:9092` became 127.0.0.1:9092, where `tidepool up` (or a local
Apache Kafka) listens. Everything else is as the tutorial wrote it, including kafka-python; the two environment
variables only exist so tests can run it quickly (defaults: the tutorial's 2000 messages, 5 s apart).

    pip install kafka-python      # already in tidepool's dev extras
    python3 examples/sensor_producer.py
"""

import json
import os
import random
import time

from kafka import KafkaProducer


def random_pressure():
    return round(random.uniform(0, 10), 1)


def random_tempreture():
    return round(random.uniform(0, 100), 1)


def random_visibility():
    return round(random.uniform(0, 100), 1)


def get_json_data():
    data = {}

    data["pressure"] = random_pressure()
    data["temperature"] = random_tempreture()
    data["visibility"] = random_visibility()

    return json.dumps(data)


def main():
    producer = KafkaProducer(bootstrap_servers=[os.environ.get("SENSOR_BOOTSTRAP", "127.0.0.1:9092")])

    for _ in range(int(os.environ.get("SENSOR_COUNT", "2000"))):
        json_data = get_json_data()
        producer.send("oceanic", bytes(f"{json_data}", "UTF-8"))
        print(f"Sensor data is sent: {json_data}")
        time.sleep(float(os.environ.get("SENSOR_INTERVAL", "5")))
    producer.flush()


if __name__ == "__main__":
    main()
