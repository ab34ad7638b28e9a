#!/usr/bin/python3
# Floods a VM with calls from many connections at once (python3-dbus); the bus address
# comes from DBUS_SYSTEM_BUS_ADDRESS.
#
#   flood.py VM CONNECTIONS PER_CONNECTION IFACE METHOD [SIGNATURE ARG]
#       opens CONNECTIONS connections, sends PER_CONNECTION calls of org.vmsup.IFACE.METHOD
#       on each without waiting for answers, prints "SENT", then one line per answer as it
#       comes ("ok" or the error's name), and at the end "done OK BUSY OTHER"
import os
import sys

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

ADDRESS = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]


def main():
    vm, nconn, per, iface, method = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    sig, args = (sys.argv[6], [sys.argv[7]]) if len(sys.argv) > 7 else ("", [])
    DBusGMainLoop(set_as_default=True)
    loop = GLib.MainLoop()
    counts = {"ok": 0, "busy": 0, "other": 0}
    total = nconn * per
    conns = [dbus.bus.BusConnection(ADDRESS) for _ in range(nconn)]

    def answered(kind, line):
        counts[kind] += 1
        print(line, flush=True)
        if sum(counts.values()) == total:
            loop.quit()

    def on_ok(*a):
        answered("ok", "ok")

    def on_err(e):
        name = e.get_dbus_name()
        answered("busy" if name == "org.vmsup.Error.Busy" else "other", name)

    for c in conns:
        for _ in range(per):
            c.call_async("org.vmsup.VM." + vm, "/org/vmsup/VM", "org.vmsup." + iface, method, sig, args,
                         on_ok, on_err, timeout=120)
    print("SENT", flush=True)
    loop.run()
    print("done", counts["ok"], counts["busy"], counts["other"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
