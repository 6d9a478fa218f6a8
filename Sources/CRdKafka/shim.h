#pragma once
#include <librdkafka/rdkafka.h>

// Swift cannot call C variadic functions such as rd_kafka_producev, so the few calls
// Gatehouse needs are wrapped here. Only APIs present in librdkafka 2.0.2 (Debian's
// headers) are used: at run time a newer library may be swapped in.

/// Produces one keyed message (payload and key copied) with a per-message opaque that
/// the delivery report callback receives as rkmessage->_private.
static inline rd_kafka_resp_err_t gatehouse_rd_kafka_produce(rd_kafka_t *rk, const char *topic,
                                                             const void *key, size_t key_len,
                                                             const void *value, size_t value_len,
                                                             void *msg_opaque) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(msg_opaque),
                             RD_KAFKA_V_END);
}
