#!/usr/bin/python3
# Many callers of a VM (python3-dbus, blocking calls); the bus address comes from
# DBUS_SYSTEM_BUS_ADDRESS.
#
#   callers.py repeat VM N          one connection, N GetStatus calls one after the other;
#                                   prints "NAME <unique name>", then "done OK DENIED OTHER"
#   callers.py churn VM N MODE      N connections one after the other, each opened, used and
#                                   closed; MODE: call (one GetStatus each), idle (none), mixed
#                                   (every other one calls); prints "done OK DENIED OTHER"
#   callers.py hold VM N            opens N connections, one GetStatus on each in turn, then
#                                   prints "FIRST <unique name>" and "LAST <unique name>" of the
#                                   first and the last, and "done ..."; once a line comes on
#                                   stdin, calls again on the first and the last and prints
#                                   "again RESULT RESULT" (ok or the error's name); all stay
#                                   open until then
import os
import sys

import dbus

ADDRESS = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]


def get_status(conn, vm):
    obj = conn.get_object("org.vmsup.VM." + vm, "/org/vmsup/VM", introspect=False)
    try:
        obj.GetStatus(dbus_interface="org.vmsup.VM1", timeout=60)
        return "ok"
    except dbus.exceptions.DBusException as e:
        return e.get_dbus_name()


def tally(counts, result):
    if result == "ok":
        counts[0] += 1
    elif result == "org.freedesktop.DBus.Error.AccessDenied":
        counts[1] += 1
    else:
        counts[2] += 1
        print("error", result, flush=True)


def main():
    what, vm, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    counts = [0, 0, 0]
    if what == "repeat":
        conn = dbus.bus.BusConnection(ADDRESS)
        print("NAME", conn.get_unique_name(), flush=True)
        for _ in range(n):
            tally(counts, get_status(conn, vm))
        conn.close()
    elif what == "churn":
        mode = sys.argv[4]
        for i in range(n):
            conn = dbus.bus.BusConnection(ADDRESS)
            if mode == "call" or (mode == "mixed" and i % 2 == 0):
                tally(counts, get_status(conn, vm))
            conn.close()
    elif what == "hold":
        conns = [dbus.bus.BusConnection(ADDRESS) for _ in range(n)]
        for c in conns:
            tally(counts, get_status(c, vm))
        print("FIRST", conns[0].get_unique_name(), flush=True)
        print("LAST", conns[-1].get_unique_name(), flush=True)
        print("done %d %d %d" % tuple(counts), flush=True)
        sys.stdin.readline()
        print("again", get_status(conns[0], vm), get_status(conns[-1], vm), flush=True)
        for c in conns:
            c.close()
        return
    print("done %d %d %d" % tuple(counts), flush=True)


main()
