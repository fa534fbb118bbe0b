"""A produce-and-consume cell per broker: what a learner's first cell does (tests and make bench run it)."""

PRODUCE_CONSUME = {
    "redis": """
import os, redis
r = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
r.delete("smoke")
r.xadd("smoke", {"body": "hello-redis"})
r.xgroup_create("smoke", "smoke-group", id="0")
[(_, [(entry_id, fields)])] = r.xreadgroup("smoke-group", "one", {"smoke": ">"}, count=1)
r.xack("smoke", "smoke-group", entry_id)
print("got", fields["body"])
""",
    "nats": """
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    sub = await nc.subscribe("smoke.cell")
    await nc.publish("smoke.cell", b"hello-nats")
    msg = await sub.next_msg(timeout=10)
    print("got", msg.data.decode())
    await nc.close()
asyncio.run(main())
""",
    "rabbitmq": """
import os, pika
conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
ch = conn.channel()
ch.queue_declare("smoke-cell")
ch.basic_publish("", "smoke-cell", b"hello-rabbit")
method, props, body = next(ch.consume("smoke-cell", inactivity_timeout=10))
ch.basic_ack(method.delivery_tag)
print("got", body.decode())
conn.close()
""",
    "activemq": """
import os, time, stomp
got = []
class L(stomp.ConnectionListener):
    def on_message(self, frame): got.append(frame.body)
c = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
c.set_listener("", L())
c.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
c.subscribe("/queue/smoke-cell", id=1, ack="auto")
c.send("/queue/smoke-cell", "hello-amq")
deadline = time.time() + 20
while not got and time.time() < deadline: time.sleep(0.05)
print("got", got[0])
c.disconnect()
""",
    "kafka": """
import os
from kafka import KafkaProducer, KafkaConsumer
p = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
p.send("smoke-cell", b"hello-kafka").get(timeout=30)
p.close()
c = KafkaConsumer("smoke-cell", bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], auto_offset_reset="earliest",
                  consumer_timeout_ms=60000, group_id="smoke")
print("got", next(iter(c)).value.decode())
c.close()
""",
}
