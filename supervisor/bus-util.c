/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "log.h"

/* ---- who is calling ---- */

int bus_caller(VmBus *b, sd_bus_message *m, Caller *ret_caller, PrivSet *ret_privs, sd_bus_error *error) {
        Caller caller;

        if (creds_cache_lookup(b->creds, m, &caller) < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                        "The caller's credentials are not available.");
        *ret_caller = caller;
        *ret_privs = policy_acl_privileges(b->vm->config->acl, b->vm->config->n_acl, &caller) |
                     policy_acl_privileges(b->vm->host_acl, b->vm->n_host_acl, &caller);
        return 0;
}

int bus_require_caller(VmBus *b, sd_bus_message *m, Privilege needed, Caller *ret_caller, sd_bus_error *error) {
        char msg[256];
        Caller caller;
        PrivSet privs;
        int r;

        r = bus_caller(b, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = policy_check_privilege(needed, &caller, privs, msg, sizeof msg);
        if (r < 0)
                return bus_policy_error(error, r, msg);
        if (ret_caller)
                *ret_caller = caller;
        return 0;
}

int bus_require(VmBus *b, sd_bus_message *m, Privilege needed, sd_bus_error *error) {
        return bus_require_caller(b, m, needed, NULL, error);
}

int bus_policy_error(sd_bus_error *error, int r, const char *msg) {
        return bus_error_set_errno(error, BUS_ERROR_POLICY, r, NULL, msg);
}

/* ---- failed requests as D-Bus errors: the one errno table ---- */

typedef enum BusErrorArg {
        ARG_NONE,
        ARG_CLASS_DESC, /* "%s: %s": the peer's error class and description, sanitized */
        ARG_STRERROR,   /* "%s": strerror() of the error */
        ARG_LIMIT_MIB,  /* "%zu": .limit in MiB */
        ARG_TEXT,       /* no format: err_desc is the message (the policy's own) */
} BusErrorArg;

typedef struct BusErrorRow {
        BusErrorSource source;
        int error; /* negative errno; 0 = any other error of this source */
        const char *name; /* NULL: sd-bus's own error for the errno */
        const char *format;
        BusErrorArg arg;
        size_t limit;
} BusErrorRow;

#define ROW(src, err, nm, fmt, ...) { .source = (src), .error = (err), .name = (nm), .format = (fmt), __VA_ARGS__ }
static const BusErrorRow bus_error_table[] = {
        ROW(BUS_ERROR_POLICY, -EINVAL, SD_BUS_ERROR_INVALID_ARGS, NULL, .arg = ARG_TEXT),
        ROW(BUS_ERROR_POLICY, -EACCES, SD_BUS_ERROR_ACCESS_DENIED, NULL, .arg = ARG_TEXT),
        ROW(BUS_ERROR_POLICY, -EPERM, SD_BUS_ERROR_ACCESS_DENIED, NULL, .arg = ARG_TEXT),
        ROW(BUS_ERROR_POLICY, 0, NULL, NULL),

        ROW(BUS_ERROR_QMP_SEND, -EBUSY, VMSUP_ERROR_BUSY, "Too many requests to QEMU in flight."),
        ROW(BUS_ERROR_QMP_SEND, -ENOBUFS, VMSUP_ERROR_BUSY, "Too many requests to QEMU in flight."),
        ROW(BUS_ERROR_QMP_SEND, -EINVAL, SD_BUS_ERROR_INVALID_ARGS, "Not a valid QMP command."),
        ROW(BUS_ERROR_QMP_SEND, 0, VMSUP_ERROR_NOT_RUNNING, "The VM is not running."),

        ROW(BUS_ERROR_QMP_REPLY, -EREMOTEIO, VMSUP_ERROR_QEMU_ERROR, "%s: %s", .arg = ARG_CLASS_DESC),
        ROW(BUS_ERROR_QMP_REPLY, -ECONNRESET, VMSUP_ERROR_NOT_RUNNING, "QEMU went away before it answered."),
        ROW(BUS_ERROR_QMP_REPLY, -ENOTCONN, VMSUP_ERROR_NOT_RUNNING, "QEMU went away before it answered."),
        ROW(BUS_ERROR_QMP_REPLY, -ETIMEDOUT, SD_BUS_ERROR_TIMEOUT, "QEMU did not answer in time."),
        ROW(BUS_ERROR_QMP_REPLY, -EFBIG, VMSUP_ERROR_RESPONSE_TOO_LARGE, "QEMU's answer is larger than %zu MiB.",
            .arg = ARG_LIMIT_MIB, .limit = QMP_LINE_MAX),
        ROW(BUS_ERROR_QMP_REPLY, -ECANCELED, VMSUP_ERROR_NOT_RUNNING, "The request was cancelled."),
        ROW(BUS_ERROR_QMP_REPLY, 0, SD_BUS_ERROR_FAILED, "QEMU request failed: %s.", .arg = ARG_STRERROR),

        ROW(BUS_ERROR_AGENT_SEND, -EBUSY, VMSUP_ERROR_BUSY, "Too many agent commands are waiting."),
        ROW(BUS_ERROR_AGENT_SEND, -EINVAL, SD_BUS_ERROR_INVALID_ARGS, "The guest agent would not read the command as sent."),
        ROW(BUS_ERROR_AGENT_SEND, 0, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected."),

        ROW(BUS_ERROR_AGENT_REPLY, -EREMOTEIO, VMSUP_ERROR_AGENT_ERROR, "%s: %s", .arg = ARG_CLASS_DESC),
        ROW(BUS_ERROR_AGENT_REPLY, -ETIMEDOUT, VMSUP_ERROR_AGENT_TIMEOUT, "The guest agent did not answer in time."),
        ROW(BUS_ERROR_AGENT_REPLY, -EPROTO, VMSUP_ERROR_AGENT_PROTOCOL,
            "The guest agent sent a reply that violates the protocol."),
        /* Agent1.Command asks for replies of at most BUS_REPLY_MAX. */
        ROW(BUS_ERROR_AGENT_REPLY, -EFBIG, VMSUP_ERROR_RESPONSE_TOO_LARGE,
            "The agent's reply is larger than %zu MiB; use ReadFile for large data.",
            .arg = ARG_LIMIT_MIB, .limit = BUS_REPLY_MAX),
        ROW(BUS_ERROR_AGENT_REPLY, -EBUSY, VMSUP_ERROR_BUSY, "Too many agent commands are waiting."),
        ROW(BUS_ERROR_AGENT_REPLY, -EINVAL, SD_BUS_ERROR_INVALID_ARGS,
            "The guest agent would not read the request as sent (nested too deep, or a Unicode noncharacter)."),
        ROW(BUS_ERROR_AGENT_REPLY, -ENOTCONN, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected."),
        ROW(BUS_ERROR_AGENT_REPLY, -ECANCELED, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected."),
        ROW(BUS_ERROR_AGENT_REPLY, 0, SD_BUS_ERROR_FAILED, "The agent request failed: %s.", .arg = ARG_STRERROR),
};
#undef ROW

const char *bus_error_from_errno(BusErrorSource source, int r, const char *err_class, const char *err_desc,
                                 char *msg, size_t msgsz) {
        const BusErrorRow *row = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bus_error_table); i++)
                if (bus_error_table[i].source == source &&
                    (bus_error_table[i].error == r || bus_error_table[i].error == 0)) {
                        row = &bus_error_table[i];
                        break;
                }
        if (!row) { /* every source ends with a default row: cannot happen */
                snprintf(msg, msgsz, "Request failed.");
                return SD_BUS_ERROR_FAILED;
        }

        /* The formats are the table's own, each with the one argument its row names. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        switch (row->arg) {
        case ARG_CLASS_DESC: {
                /* The peer's own words: printable ASCII only, bounded (the agent client
                 * hands over at most QGA_ERROR_*_MAX already). */
                char cls[QGA_ERROR_CLASS_MAX + 1], desc[512];
                text_sanitize(cls, sizeof cls, err_class, err_class ? strlen(err_class) : 0, 0);
                text_sanitize(desc, sizeof desc, err_desc, err_desc ? strlen(err_desc) : 0, 0);
                snprintf(msg, msgsz, row->format, cls, desc);
                break;
        }
        case ARG_STRERROR:
                snprintf(msg, msgsz, row->format, strerror(-r));
                break;
        case ARG_LIMIT_MIB:
                snprintf(msg, msgsz, row->format, row->limit / (1024U * 1024U));
                break;
        case ARG_TEXT:
                snprintf(msg, msgsz, "%s", err_desc ?: "");
                break;
        case ARG_NONE:
                snprintf(msg, msgsz, "%s", row->format ?: strerror(-r));
                break;
        }
#pragma GCC diagnostic pop
        return row->name;
}

int bus_error_set_errno(sd_bus_error *error, BusErrorSource source, int r, const char *err_class,
                        const char *err_desc) {
        char msg[512];
        const char *name;

        if (r == -ENOMEM)
                return r;
        name = bus_error_from_errno(source, r, err_class, err_desc, msg, sizeof msg);
        if (!name)
                return sd_bus_error_set_errno(error, r);
        return sd_bus_error_set(error, name, msg);
}

void bus_reply_errno(sd_bus_message *m, BusErrorSource source, int r, const char *err_class, const char *err_desc) {
        char msg[512];
        const char *name;

        if (!m)
                return;
        name = bus_error_from_errno(source, r, err_class, err_desc, msg, sizeof msg);
        if (name)
                (void) sd_bus_reply_method_errorf(m, name, "%s", msg);
        else
                (void) sd_bus_reply_method_errno(m, r, NULL);
}

/* ---- replies ---- */

void bus_reply_error(sd_bus_message *m, const char *name, const char *fmt, ...) {
        char text[512];
        va_list ap;

        if (!m)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        (void) sd_bus_reply_method_errorf(m, name, "%s", text);
}

void bus_reply_string(sd_bus_message *m, const char *s, size_t len, const char *what, const char *hint) {
        if (len > BUS_REPLY_MAX)
                bus_reply_error(m, VMSUP_ERROR_RESPONSE_TOO_LARGE, "%s is larger than %u MiB%s.", what,
                                BUS_REPLY_MAX / (1024U * 1024U), hint);
        else if (sd_bus_reply_method_return(m, "s", s) < 0)
                bus_reply_error(m, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
}

/* ---- the caller's JSON ---- */

int bus_parse_json_command(const char *text, size_t max, json_t **ret, sd_bus_error *error) {
        json_error_t jerr;
        json_t *cmd;

        if (strlen(text) > max)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The command is larger than %zu KiB.",
                                         max / 1024);
        cmd = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!cmd) /* jansson's text quotes the input: say where, not what */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The command is not valid JSON (line %d, column %d).", jerr.line, jerr.column);
        *ret = cmd;
        return 0;
}

/* ---- QMP calls answered on the bus ---- */

typedef struct BusQmpCall {
        VmBus *bus;
        sd_bus_message *message;
        bus_qmp_reply_t reply;
        BusTicket *ticket; /* the caller's share, until the reply */
} BusQmpCall;

static void on_bus_qmp_reply(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                             void *userdata) {
        BusQmpCall *call = userdata;

        call->reply(call->bus, call->message, error, result, err_class, err_desc);
        bus_ticket_release(call->ticket);
        sd_bus_message_unref(call->message);
        free(call);
}

int bus_qmp_call(VmBus *b, sd_bus_message *m, const char *execute, json_t *arguments, bus_qmp_reply_t reply,
                 sd_bus_error *error) {
        BusTicket *ticket = NULL;
        BusQmpCall *call;
        Caller caller;
        PrivSet privs;
        int r;

        if (!vm_is_running(b->vm))
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        r = bus_caller(b, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = bus_quota_acquire(b->quota, m, &caller, BUS_QUOTA_CALL, &ticket, error);
        if (r < 0)
                return r;
        call = calloc(1, sizeof *call);
        if (!call) {
                bus_ticket_release(ticket);
                return -ENOMEM;
        }
        *call = (BusQmpCall) { .bus = b, .message = sd_bus_message_ref(m), .reply = reply, .ticket = ticket };
        r = qmp_send(b->vm->qmp, execute, arguments, 0, on_bus_qmp_reply, call, NULL);
        if (r < 0) {
                bus_ticket_release(call->ticket);
                sd_bus_message_unref(call->message);
                free(call);
                return bus_error_set_errno(error, BUS_ERROR_QMP_SEND, r, NULL, NULL);
        }
        return 1;
}

void bus_qmp_reply_empty(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                         const char *err_desc) {
        if (error < 0)
                bus_reply_errno(m, BUS_ERROR_QMP_REPLY, error, err_class, err_desc);
        else
                (void) sd_bus_reply_method_return(m, NULL);
}

void bus_qmp_reply_json(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                        const char *err_desc) {
        _cleanup_free_ char *s = NULL;

        if (error < 0) {
                bus_reply_errno(m, BUS_ERROR_QMP_REPLY, error, err_class, err_desc);
                return;
        }
        s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        if (!s)
                bus_reply_error(m, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
        else
                bus_reply_string(m, s, strlen(s), "The reply", "");
}
