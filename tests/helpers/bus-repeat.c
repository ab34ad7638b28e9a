/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-repeat ADDRESS VM INTERFACE METHOD COUNT: calls an argument-less method COUNT
 * times over one connection (busctl and dbus-send connect anew for every call, so
 * they never see what a long-lived client sees) and prints one line per call:
 * "ok" or "error NAME: MESSAGE". */

#include <systemd/sd-bus.h>

#include "macro.h"

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *dest = NULL;
        uint64_t count;
        int r;

        if (argc != 6 || safe_atou64(argv[5], &count) < 0) {
                fprintf(stderr, "usage: bus-repeat ADDRESS VM INTERFACE METHOD COUNT\n");
                return 2;
        }
        if (asprintf(&dest, "org.vmsup.VM.%s", argv[2]) < 0)
                return 1;
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, argv[1]);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                fprintf(stderr, "bus-repeat: cannot connect: %s\n", strerror(-r));
                return 1;
        }
        for (uint64_t i = 0; i < count; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

                r = sd_bus_call_method(bus, dest, "/org/vmsup/VM", argv[3], argv[4], &error, &reply, "");
                if (r < 0)
                        printf("error %s: %s\n", error.name ?: "?", error.message ?: strerror(-r));
                else
                        printf("ok\n");
        }
        return 0;
}
