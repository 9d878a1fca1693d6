"""Resolves a Warren promise from Python with pika, as any existing service can.

    pip install pika
    python3 resolve_with_pika.py hitl-001.1 approved [amqp://guest:guest@localhost:5672/%2f]
"""
import json
import sys

import pika

promise_id, decision = sys.argv[1], sys.argv[2]
url = sys.argv[3] if len(sys.argv) > 3 else "amqp://guest:guest@localhost:5672/%2f"
exchange = sys.argv[4] if len(sys.argv) > 4 else "warren"  # the orchestrator's --prefix

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()  # basic_publish returns once the broker has the message
channel.basic_publish(
    exchange=exchange,
    routing_key="promise.resolve",
    body=json.dumps({"id": promise_id, "value": decision}),
    properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
)
connection.close()
print("resolved", promise_id, "with", json.dumps(decision))
