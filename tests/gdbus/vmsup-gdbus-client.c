/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client written against the code gdbus-codegen generates from the shipped
 * interface files (the XML in interfaces/): the proof that a client can be generated
 * from them. Usage: vmsup-gdbus-client BUS_ADDRESS NAME [start]
 * Reads State, calls GetStatus and Monitor1.HumanCommand("info status") (and
 * VM1.Start first with "start"); prints one line each. Exit status: 0 all
 * answered, 4 some call was refused (AccessDenied), 1 another failure. */

#include <stdio.h>
#include <string.h>

#include "vmsup-generated.h"

static int status = 0;

static void report(const char *what, GError *error) {
        g_autofree char *remote = g_dbus_error_get_remote_error(error);

        if (remote)
                g_dbus_error_strip_remote_error(error);
        printf("%s: error %s: %s\n", what, remote ? remote : "local", error->message);
        if (remote && strcmp(remote, "org.freedesktop.DBus.Error.AccessDenied") == 0) {
                if (status == 0)
                        status = 4;
        } else
                status = 1;
}

int main(int argc, char *argv[]) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusConnection) bus = NULL;
        g_autoptr(VmsupVM1) vm = NULL;
        g_autoptr(VmsupMonitor1) mon = NULL;
        g_autoptr(GVariant) st = NULL;
        g_autofree char *dest = NULL, *out = NULL;
        const char *state;

        if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "start") != 0)) {
                fprintf(stderr, "usage: %s BUS_ADDRESS NAME [start]\n", argv[0]);
                return 2;
        }
        bus = g_dbus_connection_new_for_address_sync(argv[1],
                                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                             G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                     NULL, NULL, &error);
        if (!bus) {
                fprintf(stderr, "cannot connect: %s\n", error->message);
                return 1;
        }
        dest = g_strdup_printf("org.vmsup.VM.%s", argv[2]);
        /* The proxy reads every property at creation (GetAll): refused, it has none. */
        vm = vmsup_vm1_proxy_new_sync(bus, G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS, dest, "/org/vmsup/VM", NULL,
                                      &error);
        if (!vm) {
                fprintf(stderr, "no proxy: %s\n", error->message);
                return 1;
        }
        mon = vmsup_monitor1_proxy_new_sync(bus, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES, dest, "/org/vmsup/VM",
                                            NULL, &error);
        if (!mon) {
                fprintf(stderr, "no proxy: %s\n", error->message);
                return 1;
        }
        if (argc == 4) {
                if (vmsup_vm1_call_start_sync(vm, NULL, &error))
                        printf("Start: done\n");
                else {
                        report("Start", error);
                        g_clear_error(&error);
                }
        }
        state = vmsup_vm1_get_state(vm);
        printf("State: %s\n", state ? state : "(not readable)");

        if (vmsup_vm1_call_get_status_sync(vm, &st, NULL, &error)) {
                const char *s = NULL;
                guint32 pid = 0;

                (void) g_variant_lookup(st, "state", "&s", &s);
                (void) g_variant_lookup(st, "pid", "u", &pid);
                printf("GetStatus: state=%s pid=%u\n", s ? s : "?", pid);
        } else {
                report("GetStatus", error);
                g_clear_error(&error);
        }

        if (vmsup_monitor1_call_human_command_sync(mon, "info status", &out, NULL, &error))
                printf("HumanCommand: %s\n", g_strchomp(out));
        else {
                report("HumanCommand", error);
                g_clear_error(&error);
        }
        return status;
}
