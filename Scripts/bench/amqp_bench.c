/* The baseline for Warren's AMQP benchmark: the same rabbitmq-c calls as the Swift layer makes,
 * in a plain single-threaded C loop. Built and run by Scripts/bench-amqp.sh.
 *   amqp_bench HOST PORT MESSAGES WINDOW LATENCY_SAMPLES
 * Prints: publish_confirm=<msg/s> consume_ack=<msg/s> latency_p50_us=<us> latency_p99_us=<us>
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die_on(amqp_rpc_reply_t r, const char *what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) { fprintf(stderr, "amqp_bench: %s failed\n", what); exit(1); }
}

static amqp_connection_state_t open_conn(const char *host, int port, const char *name) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, host, port) != AMQP_STATUS_OK) { fprintf(stderr, "amqp_bench: cannot connect\n"); exit(1); }
  die_on(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), name);
  amqp_channel_open(c, 1);
  die_on(amqp_get_rpc_reply(c), "channel.open");
  return c;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: amqp_bench HOST PORT MESSAGES WINDOW LATENCY_SAMPLES\n"); return 64; }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  long n = atol(argv[3]);
  long window = atol(argv[4]);
  long samples = atol(argv[5]);
  amqp_bytes_t queue = amqp_cstring_bytes("bench.c");
  char payload[64];
  memset(payload, 'x', sizeof payload);
  amqp_bytes_t body = {sizeof payload, payload};
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;

  /* 1. Publish with confirms, a window of WINDOW in flight. */
  amqp_connection_state_t pub = open_conn(host, port, "publisher");
  amqp_queue_declare(pub, 1, queue, 0, 1, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(pub), "queue.declare");
  amqp_queue_purge(pub, 1, queue);
  amqp_confirm_select(pub, 1);
  die_on(amqp_get_rpc_reply(pub), "confirm.select");
  long published = 0, confirmed = 0;
  double t0 = now();
  while (confirmed < n) {
    while (published < n && published - confirmed < window) {
      if (amqp_basic_publish(pub, 1, amqp_empty_bytes, queue, 0, 0, &props, body) != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp_bench: publish failed\n"); return 1;
      }
      published++;
    }
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(pub, &frame) != AMQP_STATUS_OK) { fprintf(stderr, "amqp_bench: read failed\n"); return 1; }
    if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *ack = frame.payload.method.decoded;
      confirmed = ack->multiple ? (long)ack->delivery_tag : confirmed + 1;
    }
    amqp_maybe_release_buffers(pub);
  }
  double publish_rate = n / (now() - t0);

  /* 2. Consume the same messages, one ack each. */
  amqp_connection_state_t con = open_conn(host, port, "consumer");
  amqp_basic_qos(con, 1, 0, (uint16_t)(window < 65535 ? window : 65535), 0);
  amqp_basic_consume(con, 1, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(con), "basic.consume");
  t0 = now();
  for (long i = 0; i < n; i++) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(con);
    die_on(amqp_consume_message(con, &env, NULL, 0), "consume");
    amqp_basic_ack(con, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
  }
  double consume_rate = n / (now() - t0);

  /* 3. Latency: publish one persistent message, wait for its delivery, ack; repeat. */
  double *lat = malloc(sizeof(double) * samples);
  for (long i = 0; i < samples; i++) {
    double s = now();
    amqp_basic_publish(pub, 1, amqp_empty_bytes, queue, 0, 0, &props, body);
    amqp_envelope_t env;
    amqp_maybe_release_buffers(con);
    die_on(amqp_consume_message(con, &env, NULL, 0), "consume");
    lat[i] = (now() - s) * 1e6;
    amqp_basic_ack(con, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
  }
  qsort(lat, samples, sizeof(double), cmp_double);
  printf("publish_confirm=%.0f consume_ack=%.0f latency_p50_us=%.0f latency_p99_us=%.0f\n", publish_rate, consume_rate,
         lat[samples / 2], lat[(samples * 99) / 100]);
  /* The publisher's confirms of the latency samples are still unread; closing drops them. */
  amqp_connection_close(con, AMQP_REPLY_SUCCESS);
  amqp_connection_close(pub, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(con);
  amqp_destroy_connection(pub);
  return 0;
}
