/*
 * A small MQTT peer built on Eclipse Paho C (Debian's libpaho-mqtt-dev, synchronous MQTTClient API), compiled by
 * test/interop/broker-paho-c.test.ts at run time and driven by its arguments. It prints one JSON object per line:
 * what it was answered and what it received, so the test judges the broker by what an independent client saw.
 *
 *   peer -u URI -i ID -V 5|4 -m pub|sub|hold [-t TOPIC] [-q QOS] [-n COUNT] [-p PREFIX] [-r] [-c] [-x EXPIRY]
 *        [-w WILL_TOPIC] [-d PERSIST_DIR] [-k KILL_AFTER] [-s] [-T TIMEOUT_MS] [-a CA] [-C CERT] [-K KEY] [-P]
 *
 * -c persistent session (clean session / clean start 0), -x session expiry (5.0), -d Paho's file persistence,
 * -k raise SIGKILL right after handing the KILL_AFTER-th publish to Paho (not waiting for its acknowledgement),
 * -s do not subscribe (resume a session), -P attach 5.0 properties to each publish (and print those received).
 */
#include <MQTTClient.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void json_string(const char *s, int len) {
  putchar('"');
  for (int i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(const char *what, int rc) {
  printf("{\"event\":\"error\",\"what\":\"%s\",\"rc\":%d}\n", what, rc);
  fflush(stdout);
  exit(2);
}

static void print_properties(MQTTProperties *props) {
  printf(",\"properties\":[");
  for (int i = 0; i < props->count; i++) {
    MQTTProperty *p = &props->array[i];
    if (i > 0) putchar(',');
    printf("[%d,", p->identifier);
    switch (MQTTProperty_getType(p->identifier)) {
      case MQTTPROPERTY_TYPE_BYTE: printf("%d", p->value.byte); break;
      case MQTTPROPERTY_TYPE_TWO_BYTE_INTEGER: printf("%d", p->value.integer2); break;
      case MQTTPROPERTY_TYPE_FOUR_BYTE_INTEGER:
      case MQTTPROPERTY_TYPE_VARIABLE_BYTE_INTEGER: printf("%d", p->value.integer4); break;
      case MQTTPROPERTY_TYPE_UTF_8_STRING_PAIR:
        json_string(p->value.data.data, p->value.data.len);
        putchar(',');
        json_string(p->value.value.data, p->value.value.len);
        break;
      default: json_string(p->value.data.data, p->value.data.len); break;
    }
    putchar(']');
  }
  putchar(']');
}

static void add_string(MQTTProperties *props, int id, const char *name, const char *value) {
  MQTTProperty p;
  memset(&p, 0, sizeof p);
  p.identifier = id;
  p.value.data.data = (char *)name;
  p.value.data.len = (int)strlen(name);
  if (value != NULL) {
    p.value.value.data = (char *)value;
    p.value.value.len = (int)strlen(value);
  }
  MQTTProperties_add(props, &p);
}

int main(int argc, char **argv) {
  const char *uri = NULL, *id = "paho-c", *mode = "sub", *topic = "paho-c/t", *prefix = "m", *will = NULL;
  const char *dir = NULL, *ca = NULL, *cert = NULL, *key = NULL;
  int version = 5, qos = 1, count = 1, retained = 0, persistent = 0, expiry = 0, kill_after = 0, subscribe = 1;
  int timeout_ms = 10000, with_properties = 0, opt;
  while ((opt = getopt(argc, argv, "u:i:V:m:t:q:n:p:rcx:w:d:k:sT:a:C:K:P")) != -1) {
    switch (opt) {
      case 'u': uri = optarg; break;
      case 'i': id = optarg; break;
      case 'V': version = atoi(optarg); break;
      case 'm': mode = optarg; break;
      case 't': topic = optarg; break;
      case 'q': qos = atoi(optarg); break;
      case 'n': count = atoi(optarg); break;
      case 'p': prefix = optarg; break;
      case 'r': retained = 1; break;
      case 'c': persistent = 1; break;
      case 'x': expiry = atoi(optarg); break;
      case 'w': will = optarg; break;
      case 'd': dir = optarg; break;
      case 'k': kill_after = atoi(optarg); break;
      case 's': subscribe = 0; break;
      case 'T': timeout_ms = atoi(optarg); break;
      case 'a': ca = optarg; break;
      case 'C': cert = optarg; break;
      case 'K': key = optarg; break;
      case 'P': with_properties = 1; break;
      default: fail("usage", -1);
    }
  }
  if (uri == NULL) fail("usage: -u URI", -1);
  setvbuf(stdout, NULL, _IOLBF, 0);

  MQTTClient client;
  MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
  create.MQTTVersion = version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
  int rc = MQTTClient_createWithOptions(&client, uri, id,
                                        dir ? MQTTCLIENT_PERSISTENCE_DEFAULT : MQTTCLIENT_PERSISTENCE_NONE,
                                        (void *)dir, &create);
  if (rc != MQTTCLIENT_SUCCESS) fail("create", rc);

  MQTTClient_connectOptions conn = MQTTClient_connectOptions_initializer;
  MQTTClient_connectOptions conn5 = MQTTClient_connectOptions_initializer5;
  if (version == 5) conn = conn5;
  conn.keepAliveInterval = 20;
  conn.connectTimeout = 5;
  if (version == 5) conn.cleanstart = !persistent;
  else conn.cleansession = !persistent;
  MQTTClient_willOptions will_options = MQTTClient_willOptions_initializer;
  if (will != NULL) {
    will_options.topicName = will;
    will_options.message = "paho-c gone";
    will_options.qos = 1;
    conn.will = &will_options;
  }
  MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
  if (ca != NULL) {
    ssl.trustStore = ca;
    ssl.keyStore = cert;
    ssl.privateKey = key;
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1;
    conn.ssl = &ssl;
  }

  MQTTProperties connect_props = MQTTProperties_initializer;
  if (version == 5 && expiry > 0) {
    MQTTProperty p;
    memset(&p, 0, sizeof p);
    p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    p.value.integer4 = expiry;
    MQTTProperties_add(&connect_props, &p);
  }
  if (version == 5) {
    MQTTResponse response = MQTTClient_connect5(client, &conn, &connect_props, NULL);
    rc = response.reasonCode;
    MQTTResponse_free(response);
  } else {
    rc = MQTTClient_connect(client, &conn);
  }
  // Paho 1.3 fills returned.sessionPresent for 3.1.1 only (-1: not known).
  printf("{\"event\":\"connected\",\"rc\":%d,\"sessionPresent\":%d}\n", rc,
         version == 5 ? -1 : conn.returned.sessionPresent);
  if (rc != MQTTCLIENT_SUCCESS) return 1;

  if (strcmp(mode, "hold") == 0) {
    for (;;) pause();
  }

  if (strcmp(mode, "pub") == 0) {
    for (int i = 1; i <= count; i++) {
      char payload[128];
      int len = snprintf(payload, sizeof payload, "%s%d", prefix, i);
      MQTTClient_message message = MQTTClient_message_initializer;
      message.payload = payload;
      message.payloadlen = len;
      message.qos = qos;
      message.retained = retained;
      MQTTProperties props = MQTTProperties_initializer;
      if (with_properties) {
        add_string(&props, MQTTPROPERTY_CODE_USER_PROPERTY, "vin", "WVW0000000001");
        add_string(&props, MQTTPROPERTY_CODE_USER_PROPERTY, "vin", "second value, same name");
        add_string(&props, MQTTPROPERTY_CODE_CONTENT_TYPE, "application/json", NULL);
        add_string(&props, MQTTPROPERTY_CODE_RESPONSE_TOPIC, "paho-c/reply", NULL);
        MQTTProperty p;
        memset(&p, 0, sizeof p);
        p.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        p.value.integer4 = 600;
        MQTTProperties_add(&props, &p);
        message.properties = props;
      }
      MQTTClient_deliveryToken token = 0;
      if (version == 5) {
        MQTTResponse response = MQTTClient_publishMessage5(client, topic, &message, &token);
        rc = response.reasonCode;
        MQTTResponse_free(response);
      } else {
        rc = MQTTClient_publishMessage(client, topic, &message, &token);
      }
      MQTTProperties_free(&props);
      if (rc != MQTTCLIENT_SUCCESS) fail("publish", rc);
      // The process dies with this publish handed to Paho (persisted, perhaps on the wire), unacknowledged.
      if (i == kill_after) raise(SIGKILL);
      if (qos > 0) {
        rc = MQTTClient_waitForCompletion(client, token, 10000);
        if (rc != MQTTCLIENT_SUCCESS) fail("waitForCompletion", rc);
      }
      printf("{\"event\":\"published\",\"payload\":\"%s\"}\n", payload);
    }
    // The in-flight messages a restart restored are sent again on connect; let them complete first.
    MQTTClient_deliveryToken *pending = NULL;
    for (int rounds = 0; rounds < 100; rounds++) {
      MQTTClient_getPendingDeliveryTokens(client, &pending);
      if (pending == NULL) break;
      MQTTClient_free(pending);
      pending = NULL;
      MQTTClient_yield();
      usleep(20000);
    }
  } else {
    if (subscribe) {
      if (version == 5) {
        MQTTSubscribe_options options = MQTTSubscribe_options_initializer;
        MQTTResponse response = MQTTClient_subscribe5(client, topic, qos, &options, NULL);
        rc = response.reasonCode;
        MQTTResponse_free(response);
      } else {
        rc = MQTTClient_subscribe(client, topic, qos);
      }
      printf("{\"event\":\"subscribed\",\"rc\":%d}\n", rc);
    } else {
      printf("{\"event\":\"subscribed\",\"rc\":-1}\n");
    }
    long long deadline = now_ms() + timeout_ms;
    int received = 0;
    while (received < count && now_ms() < deadline) {
      char *name = NULL;
      int name_len = 0;
      MQTTClient_message *message = NULL;
      rc = MQTTClient_receive(client, &name, &name_len, &message, 200);
      if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED) fail("receive", rc);
      if (message == NULL) continue;
      received++;
      printf("{\"event\":\"message\",\"topic\":");
      json_string(name, name_len > 0 ? name_len : (int)strlen(name));
      printf(",\"payload\":");
      json_string((const char *)message->payload, message->payloadlen);
      printf(",\"qos\":%d,\"retained\":%d", message->qos, message->retained);
      if (version == 5) print_properties(&message->properties);
      printf("}\n");
      MQTTClient_freeMessage(&message);
      MQTTClient_free(name);
    }
  }
  if (version == 5) MQTTClient_disconnect5(client, 1000, MQTTREASONCODE_NORMAL_DISCONNECTION, NULL);
  else MQTTClient_disconnect(client, 1000);
  MQTTClient_destroy(&client);
  printf("{\"event\":\"done\"}\n");
  return 0;
}
