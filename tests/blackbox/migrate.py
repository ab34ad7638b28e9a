#!/usr/bin/python3
# Both ends of a migration with a local disk over two TCP connections, passed as they are
# (the TCP sockets themselves are the streams: MigrateIn/MigrateOut with disk-fd).
#
#   migrate.py listen BUS VM ADDR PORT_RAM PORT_DISK   accepts one connection on each port, then
#                                                      MigrateIn(ram, {disk-fd: disk}) on VM
#   migrate.py connect BUS VM ADDR PORT_RAM PORT_DISK  connects to both, then MigrateOut(ram,
#                                                      {disk-fd: disk}) on VM
# Prints "LISTENING" once listening (listen), then "ok" or "error NAME: message".
import socket
import sys
import time

import dbus

mode, bus, vm, addr, p1, p2 = sys.argv[1:7]
if mode == "listen":
    ls = []
    for p in (p1, p2):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(p)))
        s.listen(1)
        ls.append(s)
    print("LISTENING", flush=True)
    ram, disk = ls[0].accept()[0], ls[1].accept()[0]
    method = "MigrateIn"
else:
    def conn(p):
        for _ in range(100):
            try:
                return socket.create_connection((addr, int(p)))
            except OSError:
                time.sleep(0.1)
        raise SystemExit("cannot connect to %s:%s" % (addr, p))
    ram, disk = conn(p1), conn(p2)
    method = "MigrateOut"
c = dbus.bus.BusConnection(bus)
try:
    c.call_blocking("org.vmsup.VM." + vm, "/org/vmsup/VM", "org.vmsup.Migration1", method, "ha{sv}",
                    [dbus.types.UnixFd(ram.fileno()),
                     dbus.Dictionary({"disk-fd": dbus.types.UnixFd(disk.fileno())}, signature="sv")],
                    timeout=600)
    print("ok", flush=True)
except dbus.exceptions.DBusException as e:
    print("error %s: %s" % (e.get_dbus_name(), e.get_dbus_message()), flush=True)
# Our copies go: the other side sees the end of the streams.
ram.close()
disk.close()
