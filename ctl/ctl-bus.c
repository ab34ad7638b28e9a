/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: the bus connection, method calls, what a D-Bus error means in plain
 * words and which exit status it gives, and D-Bus values as JSON. */

#include <ctype.h>
#include <stdarg.h>

#include "config.h"
#include "ctl.h"

int ctl_bus_open(sd_bus **ret) {
        const char *b = arg.bus ?: getenv("VMSUP_BUS") ?: "system";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (streq(b, "system"))
                r = sd_bus_open_system(&bus);
        else if (streq(b, "session"))
                r = sd_bus_open_user(&bus);
        else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, b);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        }
        if (r < 0) {
                fprintf(stderr, "vmsupctl: cannot connect to the %s bus: %s\n", b, strerror(-r));
                return -CTL_EXIT_FAILURE;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

const char *ctl_dest(sd_bus *bus, const char *dest) {
        return sd_bus_is_bus_client(bus) > 0 ? dest : NULL;
}

#define CTL_DIRECT_HANDSHAKE_USEC (2 * USEC_PER_SEC)

/* A peer-to-peer connection to the supervisor's own socket, handshake done. */
static int direct_open(const char *name, sd_bus **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        const char *dir = arg.runtime_dir ?: getenv("VMSUP_RUNTIME_DIR") ?: "/run/vmsup";
        _cleanup_free_ char *address = NULL;
        size_t len = strlen("unix:path=") + 3 * (strlen(dir) + strlen(name)) + 8;
        uint64_t deadline;
        char *p;
        int r;

        address = malloc(len);
        if (!address)
                return -ENOMEM;
        /* D-Bus address escaping: optionally-escaped bytes as they are, every other one %XX. */
        p = stpcpy(address, "unix:path=");
        for (const char *parts[] = { dir, "/", name, ".bus", NULL }, **q = parts; *q; q++)
                for (const char *c = *q; *c; c++)
                        if (isalnum((unsigned char) *c) || strchr("-_/.\\*", *c))
                                *p++ = *c;
                        else
                                p += sprintf(p, "%%%02x", (unsigned char) *c);
        *p = '\0';
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        /* Connected: a supervisor at its connection cap closes at once, which the handshake
         * tells (the bus is the way then). */
        deadline = now_usec(CLOCK_MONOTONIC) + CTL_DIRECT_HANDSHAKE_USEC;
        while ((r = sd_bus_is_ready(bus)) == 0) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, deadline - now);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int ctl_bus_open_vm(const char *name, sd_bus **ret) {
        int r;

        if (arg.direct != 0 && !(arg.direct < 0 && arg.bus)) {
                r = direct_open(name, ret);
                if (r >= 0)
                        return 0;
                if (arg.direct > 0) {
                        fprintf(stderr, "vmsupctl: %s: cannot use its direct socket: %s\n", name, strerror(-r));
                        return -CTL_EXIT_NO_VM;
                }
        }
        return ctl_bus_open(ret);
}

int ctl_bus_fail(int r, const char *what) {
        fprintf(stderr, "vmsupctl: %s: %s\n", what, strerror(-r));
        return CTL_EXIT_FAILURE;
}

static const struct {
        const char *name;
        const char *meaning;
        int status;
} error_table[] = {
        { SD_BUS_ERROR_ACCESS_DENIED, "access denied", CTL_EXIT_ACCESS_DENIED },
        { "org.freedesktop.DBus.Error.AuthFailed", "access denied", CTL_EXIT_ACCESS_DENIED },
        { SD_BUS_ERROR_SERVICE_UNKNOWN, "no such VM on the bus (no supervisor serves it)", CTL_EXIT_NO_VM },
        { SD_BUS_ERROR_NAME_HAS_NO_OWNER, "no such VM on the bus (no supervisor serves it)", CTL_EXIT_NO_VM },
        { SD_BUS_ERROR_INVALID_ARGS, "invalid arguments", CTL_EXIT_USAGE },
        { "org.vmsup.Error.NotRunning", "the VM is not running", CTL_EXIT_NOT_RUNNING },
        { "org.vmsup.Error.AlreadyRunning", "the VM is already running", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.QemuError", "QEMU reported an error", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.AgentError", "the guest agent reported an error", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.AgentNotConnected", "no guest agent is connected", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.AgentTimeout", "the guest agent did not answer in time", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.AgentProtocol", "the guest agent broke the protocol", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.ResponseTooLarge", "the answer is too large for the bus", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.Busy", "the supervisor is busy, try again later", CTL_EXIT_FAILURE },
        { "org.vmsup.Error.MigrationFailed", "the migration failed", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_TIMEOUT, "timed out", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_NO_REPLY, "no reply in time", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_UNKNOWN_METHOD, "this supervisor does not offer the method", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_UNKNOWN_INTERFACE, "this supervisor does not offer the interface", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_UNKNOWN_PROPERTY, "this supervisor does not offer the property", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_NOT_SUPPORTED, "not supported", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_NO_MEMORY, "the supervisor is out of memory", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_DISCONNECTED, "the bus connection was lost", CTL_EXIT_FAILURE },
        { SD_BUS_ERROR_LIMITS_EXCEEDED, "a bus limit was exceeded", CTL_EXIT_FAILURE },
};

const char *ctl_error_meaning(const char *error_name, int *ret_status) {
        for (size_t i = 0; i < ELEMENTSOF(error_table); i++)
                if (streq_ptr(error_name, error_table[i].name)) {
                        if (ret_status)
                                *ret_status = error_table[i].status;
                        return error_table[i].meaning;
                }
        if (ret_status)
                *ret_status = CTL_EXIT_FAILURE;
        return "failed";
}

/* One line: the VM, what the error means, then the error's name and the
 * supervisor's own sentence (which names a missing privilege, for instance). */
int ctl_error_status(const char *name, const sd_bus_error *e, int r) {
        int status;
        const char *meaning;

        if (!e || !e->name) {
                fprintf(stderr, "vmsupctl: %s: %s\n", name, strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        meaning = ctl_error_meaning(e->name, &status);
        fprintf(stderr, "vmsupctl: %s: %s (%s: %s)\n", name, meaning, e->name,
                e->message && *e->message ? e->message : "no message");
        return status;
}

int ctl_call(sd_bus *bus, const char *name, const char *iface, const char *method, uint64_t timeout_usec,
             sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *dest = NULL;
        va_list ap;
        int r;

        if (asprintf(&dest, VM_BUS_PREFIX "%s", name) < 0)
                return ctl_bus_fail(-ENOMEM, name);
        r = sd_bus_message_new_method_call(bus, &m, ctl_dest(bus, dest), VM_OBJECT, iface, method);
        if (r < 0)
                return ctl_bus_fail(r, name);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return ctl_bus_fail(r, name);
        }
        r = sd_bus_call(bus, m, timeout_usec, &error, &reply);
        if (r < 0)
                return ctl_error_status(name, &error, r);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

/* ---- D-Bus values as JSON ---- */

static int read_value(sd_bus_message *m, json_t **ret);

static json_t *json_u64(uint64_t v) {
        return v <= INT64_MAX ? json_integer((json_int_t) v) : json_real((double) v);
}

static int read_basic(sd_bus_message *m, char type, json_t **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': *ret = json_integer(v.y); break;
        case 'b': *ret = json_boolean(v.b); break;
        case 'n': *ret = json_integer(v.n); break;
        case 'q': *ret = json_integer(v.q); break;
        case 'i': *ret = json_integer(v.i); break;
        case 'u': *ret = json_integer(v.u); break;
        case 'x': *ret = json_integer(v.x); break;
        case 't': *ret = json_u64(v.t); break;
        case 'd': *ret = json_real(v.d); break;
        case 'h': *ret = json_null(); break;
        default: *ret = json_string(v.s); break; /* s, o, g: valid UTF-8 on the bus */
        }
        return *ret ? 0 : -ENOMEM;
}

static int read_container(sd_bus_message *m, char type, const char *contents, json_t **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == 'v') {
                r = read_value(m, &j);
        } else if (type == SD_BUS_TYPE_ARRAY && contents[0] == '{') {
                j = json_object();
                if (!j)
                        return -ENOMEM;
                char entry[16];
                size_t len = strlen(contents);

                /* "{sv}" → "sv": what the dict entry holds */
                if (len < 4 || len - 2 >= sizeof entry)
                        return -EBADMSG;
                memcpy(entry, contents + 1, len - 2);
                entry[len - 2] = '\0';
                while ((r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                        _cleanup_(json_decrefp) json_t *k = NULL, *v = NULL;
                        _cleanup_free_ char *key = NULL;

                        r = read_value(m, &k);
                        if (r < 0)
                                return r;
                        r = read_value(m, &v);
                        if (r < 0)
                                return r;
                        key = json_is_string(k) ? strdup(json_string_value(k)) : json_dumps(k, JSON_ENCODE_ANY);
                        if (!key || json_object_set(j, key, v) < 0)
                                return -ENOMEM;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
        } else {
                j = json_array();
                if (!j)
                        return -ENOMEM;
                for (;;) {
                        _cleanup_(json_decrefp) json_t *v = NULL;

                        r = sd_bus_message_at_end(m, false);
                        if (r != 0)
                                break;
                        r = read_value(m, &v);
                        if (r < 0)
                                return r;
                        if (json_array_append(j, v) < 0)
                                return -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

static int read_value(sd_bus_message *m, json_t **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        if (IN_SET(type, SD_BUS_TYPE_ARRAY, SD_BUS_TYPE_VARIANT, SD_BUS_TYPE_STRUCT, SD_BUS_TYPE_DICT_ENTRY))
                return read_container(m, type, contents, ret);
        return read_basic(m, type, ret);
}

int ctl_json_from_message(sd_bus_message *m, json_t **ret) {
        return read_value(m, ret);
}

int ctl_print_json(json_t *j, bool pretty) {
        _cleanup_free_ char *s = json_dumps(j, JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT));

        if (!s)
                return ctl_bus_fail(-ENOMEM, "JSON");
        puts(s);
        return 0;
}
