#pragma once
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <microhttpd.h>

/*
 * Swift cannot call C variadic functions, so the few variadic libmicrohttpd entry
 * points Gatehouse needs are wrapped here with fixed arguments.
 */

/* The URI log callback: called once per request with the raw request target
 * (path and query, still percent-encoded); its result becomes the request's con_cls. */
typedef void *(*gatehouse_mhd_uri_callback)(void *cls, const char *uri, struct MHD_Connection *connection);

/*
 * Starts a daemon with the callbacks Gatehouse always installs (logger first, as MHD
 * asks, then request-completed and URI callbacks, all with the same context `cls`)
 * followed by `options`, an array terminated by {MHD_OPTION_END, 0, NULL}.
 * Returns NULL when the daemon cannot start (the logger has said why).
 */
static inline struct MHD_Daemon *gatehouse_mhd_start(unsigned int flags, MHD_AccessHandlerCallback handler,
    MHD_RequestCompletedCallback completed, gatehouse_mhd_uri_callback uri_callback, MHD_LogCallback logger,
    void *cls, struct MHD_OptionItem *options)
{
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, cls,
        MHD_OPTION_EXTERNAL_LOGGER, logger, cls,
        MHD_OPTION_NOTIFY_COMPLETED, completed, cls,
        MHD_OPTION_URI_LOG_CALLBACK, uri_callback, cls,
        MHD_OPTION_ARRAY, options,
        MHD_OPTION_END);
}

/* The port the daemon listens on (the real one when it was started on port 0), or 0. */
static inline uint16_t gatehouse_mhd_bind_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/* Writes the client's numeric address (no port) into `buffer`; returns 0 on success. */
static inline int gatehouse_mhd_client_address(struct MHD_Connection *connection, char *buffer, size_t length)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL || length == 0) return -1;
    const struct sockaddr *address = info->client_addr;
    const void *raw = NULL;
    if (address->sa_family == AF_INET) raw = &((const struct sockaddr_in *)address)->sin_addr;
    else if (address->sa_family == AF_INET6) raw = &((const struct sockaddr_in6 *)address)->sin6_addr;
    else return -1;
    return inet_ntop(address->sa_family, raw, buffer, (socklen_t)length) == NULL ? -1 : 0;
}

/* Formats a libmicrohttpd log message (the external logger receives a format and a va_list). */
static inline int gatehouse_mhd_format(char *buffer, size_t length, const char *format, va_list arguments)
{
    return vsnprintf(buffer, length, format, arguments);
}
