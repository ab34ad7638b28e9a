/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl console, vnc and screenshot: org.vmsup.Console1. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"

#define CONSOLE_IFACE "org.vmsup.Console1"
/* Ctrl-], as telnet and virsh console. */
#define ESCAPE_CHAR 0x1d

/* ---- console ---- */

static struct termios saved_termios;
static bool termios_saved;

static void terminal_restore(void) {
        if (termios_saved)
                (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
}

static void on_fatal_signal(int sig) {
        terminal_restore();
        signal(sig, SIG_DFL);
        raise(sig);
}

static int terminal_raw(void) {
        struct termios t;

        if (!isatty(STDIN_FILENO))
                return 0;
        if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
                return -errno;
        termios_saved = true;
        /* Every way out puts the terminal back: return, exit(), and the signals that end us. */
        atexit(terminal_restore);
        for (int sig = SIGHUP; sig <= SIGTERM; sig++)
                if (IN_SET(sig, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGABRT, SIGSEGV, SIGBUS))
                        (void) signal(sig, on_fatal_signal);
        t = saved_termios;
        cfmakeraw(&t);
        if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0)
                return -errno;
        return 0;
}

static bool write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static int open_fd(const char *name, const char *method, bool force, int *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r, fd;

        r = ctl_bus_open_vm(name, &bus);
        if (r < 0)
                return -r;
        if (force)
                r = ctl_call(bus, name, CONSOLE_IFACE, "OpenSerialWithOptions", 0, &reply, "a{sv}", 1, "force", "b",
                             1);
        else
                r = ctl_call(bus, name, CONSOLE_IFACE, method, 0, &reply, NULL);
        if (r > 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return ctl_bus_fail(r, name);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return ctl_bus_fail(-errno, name);
        *ret = fd;
        return 0;
}

int verb_console(char **args, size_t n) {
        _cleanup_close_ int fd = -EBADF;
        bool tty = isatty(STDIN_FILENO);
        char buf[4096];
        int r;

        r = open_fd(args[0], "OpenSerial", arg.force, &fd);
        if (r > 0)
                return r;
        if (tty)
                fprintf(stderr, "Connected to %s's serial console; the escape character is ^]\r\n", args[0]);
        r = terminal_raw();
        if (r < 0)
                return ctl_bus_fail(r, "cannot set up the terminal");
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = STDIN_FILENO, .events = POLLIN },
                        { .fd = fd, .events = POLLIN },
                };
                ssize_t k;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents) {
                        k = read(STDIN_FILENO, buf, sizeof buf);
                        if (k <= 0)
                                break; /* end of input */
                        if (tty) {
                                char *esc = memchr(buf, ESCAPE_CHAR, (size_t) k);
                                if (esc) {
                                        (void) write_all(fd, buf, (size_t) (esc - buf));
                                        break;
                                }
                        }
                        if (!write_all(fd, buf, (size_t) k))
                                break;
                }
                if (p[1].revents) {
                        k = read(fd, buf, sizeof buf);
                        if (k <= 0) {
                                terminal_restore();
                                if (tty)
                                        fprintf(stderr, "\nThe console session ended.\n");
                                return CTL_EXIT_OK;
                        }
                        if (!write_all(STDOUT_FILENO, buf, (size_t) k))
                                break;
                }
        }
        terminal_restore();
        if (tty)
                fprintf(stderr, "\n");
        return CTL_EXIT_OK;
}

/* ---- screenshot ---- */

int verb_screenshot(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_close_ int out = -EBADF;
        int p[2], r, status;
        pid_t pid;

        out = open(args[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
        if (out < 0) {
                fprintf(stderr, "vmsupctl: cannot open %s: %m\n", args[1]);
                return CTL_EXIT_FAILURE;
        }
        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return ctl_bus_fail(-errno, "pipe");
        /* The supervisor writes into a pipe (it takes no regular files); a child copies it
         * into the file while the call runs. */
        pid = fork();
        if (pid < 0)
                return ctl_bus_fail(-errno, "fork");
        if (pid == 0) {
                char buf[65536];
                ssize_t k;

                close(p[1]);
                while ((k = read(p[0], buf, sizeof buf)) != 0) {
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0 || !write_all(out, buf, (size_t) k))
                                _exit(1);
                }
                _exit(0);
        }
        close(p[0]);
        r = ctl_call(bus, args[0], CONSOLE_IFACE, "Screenshot", 0, NULL, "h", p[1]);
        close(p[1]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r > 0) {
                (void) unlink(args[1]);
                return r;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "vmsupctl: cannot write %s\n", args[1]);
                return CTL_EXIT_FAILURE;
        }
        return CTL_EXIT_OK;
}

/* ---- vnc ---- */

static int listen_on(const char *spec) {
        _cleanup_close_ int s = -EBADF;
        int one = 1;

        if (startswith(spec, "unix:")) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                const char *path = spec + strlen("unix:");

                if (!*path || strlen(path) >= sizeof sa.sun_path)
                        return -EINVAL;
                strcpy(sa.sun_path, path);
                s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0)
                        return -errno;
                if (bind(s, (struct sockaddr *) &sa, sizeof sa) < 0)
                        return -errno;
        } else {
                struct sockaddr_in sa = { .sin_family = AF_INET };
                const char *colon = strrchr(spec, ':');
                _cleanup_free_ char *host = NULL;
                uint64_t port;

                if (!colon || safe_atou64(colon + 1, &port) < 0 || port == 0 || port > 65535)
                        return -EINVAL;
                host = strndup(spec, (size_t) (colon - spec));
                if (!host)
                        return -ENOMEM;
                /* A viewer on this machine only: the loopback network. */
                if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
                        return -EINVAL;
                sa.sin_port = htons((uint16_t) port);
                s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0)
                        return -errno;
                (void) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (bind(s, (struct sockaddr *) &sa, sizeof sa) < 0)
                        return -errno;
        }
        if (listen(s, 16) < 0)
                return -errno;
        return TAKE_FD(s);
}

/* Copies both ways until either side ends. */
_noreturn_ static void splice_both(int a, int b) {
        char buf[65536];
        int fds[2] = { a, b };

        for (;;) {
                struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                for (int i = 0; i < 2; i++) {
                        ssize_t k;

                        if (!p[i].revents)
                                continue;
                        k = read(fds[i], buf, sizeof buf);
                        if (k <= 0 || !write_all(fds[1 - i], buf, (size_t) k))
                                _exit(0);
                }
        }
}

int verb_vnc(char **args, size_t n) {
        _cleanup_close_ int l = -EBADF;

        if (!arg.listen) {
                fprintf(stderr, "vmsupctl: vnc needs --listen unix:PATH or --listen 127.0.0.1:PORT\n");
                return CTL_EXIT_USAGE;
        }
        l = listen_on(arg.listen);
        if (l < 0) {
                errno = -l;
                fprintf(stderr, "vmsupctl: cannot listen on %s: %m\n", arg.listen);
                return l == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAILURE;
        }
        (void) signal(SIGCHLD, SIG_IGN); /* connections' children reap themselves */
        (void) signal(SIGPIPE, SIG_IGN);
        printf("LISTENING %s\n", arg.listen);
        fflush(stdout);
        for (;;) {
                _cleanup_close_ int c = -EBADF, fd = -EBADF;
                pid_t pid;
                int r;

                c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return ctl_bus_fail(-errno, "accept");
                }
                /* One OpenVNC per viewer: the supervisor authorizes each. */
                r = open_fd(args[0], "OpenVNC", false, &fd);
                if (r > 0) {
                        if (r == CTL_EXIT_ACCESS_DENIED || r == CTL_EXIT_NO_VM)
                                return r;
                        continue;
                }
                pid = fork();
                if (pid < 0)
                        continue;
                if (pid == 0) {
                        close(l);
                        splice_both(c, fd);
                }
        }
}
