/* Calls on kernel fds (an eventfd, /dev/null, a UDP socket) that reach the shim's exported
 * symbols and are passed on to the kernel: a blocking read interrupted by a handler with
 * SA_RESTART (restarted) and without (EINTR), a handler that makes such calls itself while
 * the read waits, and the results and errno of plain ones (fcntl's F_GETOWN of a process
 * group, which glibc asks with F_GETOWN_EX, included). Single-threaded, so glibc's own
 * wrappers make the bare system calls. */
#include "common.h"
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

static int null_fd, go_fd = -1;
static volatile sig_atomic_t handled, handler_bad;

static void on_alarm(int sig)
{
	(void)sig;
	/* The first tick lets the adder go: it writes only once a handler has run. */
	if (handled++ == 0 && go_fd >= 0 && write(go_fd, "g", 1) != 1)
		handler_bad = 1;
	/* Calls of its own through the same symbols while the read waits. */
	int d = dup(null_fd);
	if (d < 0 || write(d, "h", 1) != 1 || fcntl(d, F_GETFD) != 0 || close(d))
		handler_bad = 1;
}

/* SIGALRM every 30 ms from now: a tick that comes before the read starts is followed by one
 * while it waits, however late this process runs. */
static void arm(int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	if (sigaction(SIGALRM, &sa, NULL))
		die("sigaction");
	struct itimerval it = { { 0, 30000 }, { 0, 30000 } };
	if (setitimer(ITIMER_REAL, &it, NULL))
		die("setitimer");
}

static void disarm(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };
	if (setitimer(ITIMER_REAL, &it, NULL))
		die("setitimer");
}

/* A child that adds `v` to the eventfd once it can read a byte from `gate` (-1: at once). */
static pid_t add_after(int efd, uint64_t v, int gate)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char c;
		if (gate >= 0 && read(gate, &c, 1) != 1)
			_exit(SETUP_FAIL);
		_exit(write(efd, &v, 8) == 8 ? 0 : SETUP_FAIL);
	}
	return pid;
}

static void blocking_reads(void)
{
	int efd = eventfd(0, 0);
	if (efd < 0)
		die("eventfd");
	uint64_t v = 0;

	CASE("eventfd_read_restarted_after_sa_restart_handler");
	int go[2];
	if (pipe(go))
		die("pipe");
	handled = 0;
	go_fd = go[1];
	pid_t pid = add_after(efd, 5, go[0]);
	arm(1);
	SHOW(read(efd, &v, 8));
	disarm();
	go_fd = -1;
	close(go[0]);
	close(go[1]);
	printf("  value %llu, handler ran: %s, its calls %s\n", (unsigned long long)v, handled ? "yes" : "no",
	       handler_bad ? "failed" : "right");
	show_status("adder", wait_child(pid));

	CASE("eventfd_read_eintr_without_sa_restart");
	handled = 0;
	arm(0);
	SHOW(read(efd, &v, 8));
	disarm();
	printf("  handler ran: %s, its calls %s\n", handled ? "yes" : "no", handler_bad ? "failed" : "right");
	pid = add_after(efd, 7, -1);
	SHOW(read(efd, &v, 8));
	printf("  value %llu\n", (unsigned long long)v);
	show_status("adder", wait_child(pid));
	close(efd);
}

static void plain_calls(void)
{
	CASE("plain_calls_and_errors");
	char buf[8];
	SHOW(write(null_fd, "abc", 3));
	SHOW(read(null_fd, buf, sizeof buf));
	SHOW(read(-1, buf, 1));
	SHOW(write(12345, "x", 1));
	SHOW(close(-1));
	SHOW(fcntl(null_fd, F_GETFD));
	SHOW(fcntl(null_fd, F_SETFD, FD_CLOEXEC));
	SHOW(fcntl(null_fd, F_GETFD));
	SHOW(fcntl(null_fd, 12345));
	SHOW(ioctl(null_fd, TIOCGWINSZ, buf));
	int efd = eventfd(3, EFD_NONBLOCK);
	void *volatile bad = (void *)1;
	SHOW(write(efd, bad, 8));
	SHOW(read(efd, buf, 4));
	SHOW(dup2(efd, 40));
	SHOW(dup2(40, 40));
	SHOW(dup3(40, 40, 0));
	SHOW(close(40));
	SHOW(close(40));
	close(efd);

	CASE("udp_socket_calls");
	int u = SHOW(socket(AF_INET, SOCK_DGRAM, 0));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	SHOW(bind(u, (struct sockaddr *)&a, sizeof a));
	if (getsockname(u, (struct sockaddr *)&a, &len))
		die("getsockname");
	SHOW(connect(u, (struct sockaddr *)&a, sizeof a));
	SHOW(send(u, "dgram", 5, 0));
	memset(buf, 0, sizeof buf);
	SHOW(recv(u, buf, sizeof buf, 0));
	printf("  received %s\n", buf);
	SHOW(recv(u, buf, sizeof buf, MSG_DONTWAIT));
	/* glibc answers F_GETOWN from F_GETOWN_EX: a process group comes back negative. */
	SHOW(fcntl(u, F_SETOWN, -getpgrp()));
	printf("  F_GETOWN is minus the process group: %s\n", fcntl(u, F_GETOWN) == -getpgrp() ? "yes" : "no");
	SHOW(shutdown(u, SHUT_RDWR));
	SHOW(close(u));
}

int main(void)
{
	setup();
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0)
		die("open /dev/null");
	blocking_reads();
	plain_calls();
	return 0;
}
