/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sd-bus client side: what any caller of the supervisor does. */

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

int bus_open(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, cfg.bus_address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int direct_open(const char *name, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = strf("unix:path=%s/run/%s.bus", cfg.dir, name);
        int r;

        if (!address)
                return -ENOMEM;
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
        *ret = TAKE_PTR(bus);
        return 0;
}

int bus_open_as(const char *user, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct passwd *pw = getpwnam(user);
        const char *unique;
        int r, r2;

        if (!pw)
                return -ESRCH;
        /* The bus learns who we are from the socket (SO_PEERCRED at connect) and the
         * EXTERNAL handshake: both happen under these ids; afterwards we are root again. */
        if (setegid(pw->pw_gid) < 0)
                return -errno;
        if (seteuid(pw->pw_uid) < 0) {
                r = -errno;
                if (setegid(0) < 0)
                        abort();
                return r;
        }
        r = bus_open(&bus);
        if (r >= 0)
                r = sd_bus_get_unique_name(bus, &unique); /* waits for the handshake */
        r2 = seteuid(0) < 0 || setegid(0) < 0 ? -errno : 0;
        if (r2 < 0) {
                fprintf(stderr, "vmsup-bench: cannot become root again: %s\n", strerror(-r2));
                abort();
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

char *vm_dest(const char *name) {
        return strf(BUS_VM_PREFIX "%s", name);
}

static int bus_get(sd_bus *bus, const char *dest, const char *prop, char type, void *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char t[2] = { type, 0 };
        int r;

        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.freedesktop.DBus.Properties", "Get", &error, &reply, "ss",
                               "org.vmsup.VM1", prop);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'v', t);
        if (r < 0)
                return r;
        if (type == 'b') {
                int b;
                r = sd_bus_message_read_basic(reply, 'b', &b);
                if (r >= 0)
                        *(bool *) ret = b;
                return r < 0 ? r : 0;
        }
        r = sd_bus_message_read_basic(reply, type, ret);
        return r < 0 ? r : 0;
}

int bus_get_state(sd_bus *bus, const char *dest, const char *want) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        int r;

        r = sd_bus_call_method(bus, dest, BUS_VM_PATH, "org.freedesktop.DBus.Properties", "Get", &error, &reply, "ss",
                               "org.vmsup.VM1", "State");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "v", "s", &s);
        if (r < 0)
                return r;
        if (want && !streq(s, want))
                return -EBADMSG;
        return 0;
}

int bus_get_u32(sd_bus *bus, const char *dest, const char *prop, uint32_t *ret) {
        return bus_get(bus, dest, prop, 'u', ret);
}

int bus_get_bool(sd_bus *bus, const char *dest, const char *prop, bool *ret) {
        return bus_get(bus, dest, prop, 'b', ret);
}

int bus_agent_command(sd_bus *bus, const char *dest, const char *json_cmd, json_t **ret, char **ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *s;
        json_t *v;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, BUS_VM_PATH, "org.vmsup.Agent1", "Command");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", json_cmd);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 300 * USEC_PER_SEC, &error, &reply);
        if (r < 0) {
                if (ret_error)
                        *ret_error = strf("%s: %s", error.name ?: "error", error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0)
                return r;
        v = json_loads(s, JSON_DECODE_ANY, NULL);
        if (!v)
                return -EBADMSG;
        if (ret)
                *ret = v;
        else
                json_decref(v);
        return 0;
}
