/* epoll: epoll_create1, epoll_ctl (ADD/MOD/DEL and every error: EEXIST, ENOENT, EINVAL, EBADF,
 * EPERM for a regular file, ELOOP), level-triggered epoll_wait over pipes, AF_UNIX sockets and
 * eventfds, maxevents and the ready list's order, timeouts of epoll_wait/epoll_pwait/
 * epoll_pwait2, wake-ups from another process, EINTR and epoll_pwait's mask, and fds that
 * vanish from the set when closed.
 */
#include "common.h"
#include <sys/eventfd.h>

static volatile int g_usr1, g_minus1 = -1;

static void on_usr1(int sig)
{
	(void)sig;
	g_usr1++;
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int ep, ep2, p[2], sv[2], efd, f;
	char buf[256];
	pid_t pid;
	struct timespec t0;
	struct epoll_event ev;

	CASE("epoll_create");
	ep = epoll_create1(0);
	printf("  epoll_create1(0): %s FD_CLOEXEC=%d\n", ep >= 0 ? "fd" : errname_io(errno),
	       !!(fcntl(ep, F_GETFD) & FD_CLOEXEC));
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	printf("  epoll_create1(EPOLL_CLOEXEC): %s FD_CLOEXEC=%d\n", ep2 >= 0 ? "fd" : errname_io(errno),
	       !!(fcntl(ep2, F_GETFD) & FD_CLOEXEC));
	io_close(ep2);
	IOSHOW(epoll_create1(1));
	IOSHOW(epoll_create(0));
	IOSHOW(epoll_create(-1));
	FDSHOW(ep2 = epoll_create(1));
	io_close(ep2);
	IOSHOW(read(ep, buf, 8));
	IOSHOW(write(ep, "x", 1));
	ep_show("epoll_wait on an empty set", ep, 4, 0);

	CASE("epoll_ctl_errors");
	io_pipe(p);
	ep_ctl("ADD read end", ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ep_ctl("ADD read end again", ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ep_ctl("MOD write end (not in the set)", ep, EPOLL_CTL_MOD, p[1], EPOLLOUT, 2);
	ep_ctl("DEL write end (not in the set)", ep, EPOLL_CTL_DEL, p[1], 0, 0);
	ep_ctl("op 99", ep, 99, p[1], EPOLLOUT, 2);
	ep_ctl("ADD the epoll fd to itself", ep, EPOLL_CTL_ADD, ep, EPOLLIN, 3);
	ep_ctl("ADD fd 999", ep, EPOLL_CTL_ADD, 999, EPOLLIN, 3);
	ep_ctl("ADD to epfd 999", 999, EPOLL_CTL_ADD, p[1], EPOLLIN, 3);
	ep_ctl("ADD to a pipe as epfd", p[1], EPOLL_CTL_ADD, p[0], EPOLLIN, 3);
	f = open(SK_DIR "/regular", O_RDWR | O_CREAT, 0600);
	ep_ctl("ADD a regular file", ep, EPOLL_CTL_ADD, f, EPOLLIN, 4);
	io_close(f);
	f = open(SK_DIR, O_RDONLY | O_DIRECTORY);
	ep_ctl("ADD a directory", ep, EPOLL_CTL_ADD, f, EPOLLIN, 4);
	io_close(f);
	f = open("/dev/null", O_RDWR);
	ep_ctl("ADD /dev/null", ep, EPOLL_CTL_ADD, f, EPOLLIN, 4);
	ep_show("epoll_wait", ep, 4, 0);
	ep_ctl("DEL /dev/null", ep, EPOLL_CTL_DEL, f, 0, 0);
	io_close(f);
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], NULL));
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	{
		struct epoll_event *volatile bad = (struct epoll_event *)8;
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], bad));
		IOSHOW(epoll_wait(ep, bad, 1, 0));
	}
	closep(p);

	CASE("epoll_eloop");
	ep2 = epoll_create1(0);
	ep_ctl("ADD ep2 to ep", ep, EPOLL_CTL_ADD, ep2, EPOLLIN, 5);
	ep_ctl("ADD ep to ep2", ep2, EPOLL_CTL_ADD, ep, EPOLLIN, 6);
	/* A kernel fd: the shim's own objects in a nested set are seen by the outer set only
	 * through HUP and ERR (README: limitations). */
	efd = eventfd(0, EFD_NONBLOCK);
	ep_ctl("ADD an eventfd to ep2", ep2, EPOLL_CTL_ADD, efd, EPOLLIN, 7);
	ep_show("epoll_wait ep (ep2 idle)", ep, 4, 0);
	{
		uint64_t one = 1;
		IOSHOW(write(efd, &one, sizeof one));
	}
	ep_show("epoll_wait ep (ep2 has a ready eventfd)", ep, 4, 0);
	ep_show("epoll_wait ep2", ep2, 4, 0);
	ep_ctl("DEL ep2 from ep", ep, EPOLL_CTL_DEL, ep2, 0, 0);
	io_close(ep2);
	io_close(efd);

	CASE("epoll_level_pipe");
	io_pipe(p);
	ep_ctl("ADD read end", ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 10);
	ep_ctl("ADD write end", ep, EPOLL_CTL_ADD, p[1], EPOLLIN | EPOLLOUT, 11);
	ep_show("empty pipe", ep, 4, 0);
	IOSHOW(write(p[1], "abc", 3));
	ep_show("data queued", ep, 4, 0);
	ep_show("again (level-triggered)", ep, 4, 0);
	IOSHOW(read(p[0], buf, 2));
	ep_show("1 byte left", ep, 4, 0);
	IOSHOW(read(p[0], buf, 2));
	ep_show("drained", ep, 4, 0);
	io_fill(p[1], 4096);
	ep_show("full", ep, 4, 0);
	io_drain(p[0]);
	ep_ctl("DEL write end", ep, EPOLL_CTL_DEL, p[1], 0, 0);
	io_close(p[1]);
	ep_show("writer closed", ep, 4, 0);
	ep_ctl("MOD read end to 0 events", ep, EPOLL_CTL_MOD, p[0], 0, 12);
	ep_show("events 0 (HUP still reported)", ep, 4, 0);
	io_close(p[0]);
	ep_show("read end closed", ep, 4, 0);

	CASE("epoll_level_socket");
	sk_pair(SOCK_STREAM, sv);
	ep_ctl("ADD end 0", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 20);
	ep_show("idle pair", ep, 4, 0);
	IOSHOW(write(sv[1], "data", 4));
	ep_show("data", ep, 4, 0);
	io_drain(sv[0]);
	IOSHOW(shutdown(sv[1], SHUT_WR));
	ep_show("peer SHUT_WR", ep, 4, 0);
	io_close(sv[1]);
	ep_show("peer closed", ep, 4, 0);
	io_close(sv[0]);
	{
		struct sockaddr_un a;
		socklen_t la = sk_path(&a, "ep");
		int l = sk_listener(SOCK_STREAM, &a, la, 4);
		ep_ctl("ADD listener", ep, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLOUT, 21);
		ep_show("idle listener", ep, 4, 0);
		int c = sk_connect(SOCK_STREAM, &a, la);
		ep_show("pending connection", ep, 4, 0);
		int s = sk_accept(l);
		ep_show("accepted", ep, 4, 0);
		int d = sk_socket(SOCK_DGRAM);
		ep_ctl("ADD unbound dgram", ep, EPOLL_CTL_ADD, d, EPOLLIN | EPOLLOUT, 22);
		int u = sk_socket(SOCK_STREAM);
		ep_ctl("ADD unconnected stream", ep, EPOLL_CTL_ADD, u, EPOLLIN | EPOLLOUT, 23);
		ep_show("dgram and unconnected stream", ep, 4, 0);
		io_close(d);
		io_close(u);
		io_close(s);
		io_close(c);
		io_close(l);
	}

	CASE("epoll_eventfd");
	efd = eventfd(0, EFD_NONBLOCK);
	ep_ctl("ADD eventfd", ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLOUT, 30);
	ep_show("counter 0", ep, 4, 0);
	{
		uint64_t v = 5;
		IOSHOW(write(efd, &v, sizeof v));
		ep_show("counter 5", ep, 4, 0);
		IOSHOW(read(efd, &v, sizeof v));
		printf("  read %llu\n", (unsigned long long)v);
		ep_show("counter 0 again", ep, 4, 0);
	}

	CASE("epoll_mod_del_and_tags");
	ep_ctl("MOD eventfd to EPOLLIN only, tag 31", ep, EPOLL_CTL_MOD, efd, EPOLLIN, 31);
	ep_show("EPOLLIN only", ep, 4, 0);
	ep_ctl("MOD eventfd to EPOLLOUT, tag 32", ep, EPOLL_CTL_MOD, efd, EPOLLOUT, 32);
	ep_show("EPOLLOUT", ep, 4, 0);
	ep_ctl("DEL eventfd", ep, EPOLL_CTL_DEL, efd, 0, 0);
	ep_show("deleted", ep, 4, 0);
	ep_ctl("MOD after DEL", ep, EPOLL_CTL_MOD, efd, EPOLLOUT, 33);
	io_close(efd);

	CASE("epoll_maxevents_and_order");
	{
		int e[3];
		for (int i = 0; i < 3; i++) {
			e[i] = eventfd(0, 0);
			ep_ctl("ADD eventfd", ep, EPOLL_CTL_ADD, e[i], EPOLLOUT, 40 + i);
		}
		IOSHOW(epoll_wait(ep, &ev, 0, 0));
		IOSHOW(epoll_wait(ep, &ev, g_minus1, 0));
		for (int k = 0; k < 4; k++)
			ep_show("maxevents 1", ep, 1, 0);
		ep_show("maxevents 2", ep, 2, 0);
		ep_show("maxevents 16", ep, 16, 0);
		for (int i = 0; i < 3; i++)
			io_close(e[i]);
		ep_show("all closed", ep, 16, 0);
	}

	CASE("epoll_timeouts");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ep_show("epoll_wait(timeout 0)", ep, 4, 0);
	printf("  returned within 1 s: %s\n", ms_since(&t0) < 1000 ? "yes" : "no");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ep_show("epoll_wait(timeout 60)", ep, 4, 60);
	printf("  waited at least 50 ms: %s\n", ms_since(&t0) >= 50 ? "yes" : "no");
	{
		struct timespec ts = { 0, 60 * 1000 * 1000 }, bad = { 0, 1000000000 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(epoll_pwait2(ep, &ev, 1, &ts, NULL));
		printf("  waited at least 50 ms: %s\n", ms_since(&t0) >= 50 ? "yes" : "no");
		IOSHOW(epoll_pwait2(ep, &ev, 1, &bad, NULL));
		struct timespec zero = { 0, 0 };
		IOSHOW(epoll_pwait2(ep, &ev, 1, &zero, NULL));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(epoll_pwait(ep, &ev, 1, 60, NULL));
		printf("  waited at least 50 ms: %s\n", ms_since(&t0) >= 50 ? "yes" : "no");
	}

	CASE("epoll_wait_woken_by_other_process");
	sk_pair(SOCK_STREAM, sv);
	io_pipe(p);
	ep_ctl("ADD socket", ep, EPOLL_CTL_ADD, sv[0], EPOLLIN, 50);
	ep_ctl("ADD pipe", ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 51);
	{
		pid_t me = getpid();
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			if (write(sv[1], "s", 1) != 1)
				_exit(1);
			_exit(0);
		}
		ep_show("epoll_wait(-1), socket written by a child", ep, 4, -1);
		show_status_io("child", io_reap(pid));
		io_drain(sv[0]);
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(me);
			if (write(p[1], "p", 1) != 1)
				_exit(1);
			_exit(0);
		}
		struct timespec ts = { 5, 0 };
		errno = 0;
		int n = epoll_pwait2(ep, &ev, 1, &ts, NULL);
		printf("  epoll_pwait2(5 s), pipe written by a child = %d tag %lu: %s\n", n,
		       (unsigned long)ev.data.u64, epbits(ev.events));
		show_status_io("child", io_reap(pid));
		io_drain(p[0]);
	}

	CASE("epoll_eintr_and_pwait_mask");
	if ((pid = io_fork()) == 0) {
		io_handler(SIGUSR1, on_usr1, SA_RESTART);
		ep_show("child: epoll_wait(-1) with an SA_RESTART handler", ep, 4, -1);
		printf("  child: handler ran %d time(s)\n", g_usr1);
		_exit(0);
	}
	io_wait_sleeping(pid);
	kill(pid, SIGUSR1);
	show_status_io("child", io_reap(pid));
	{
		int ack[2];
		io_pipe(ack);
		if ((pid = io_fork()) == 0) {
			io_close(ack[0]);
			io_handler(SIGUSR1, on_usr1, 0);
			sigset_t block;
			sigemptyset(&block);
			sigaddset(&block, SIGUSR1);
			struct epoll_event e;
			errno = 0;
			int n = epoll_pwait(ep, &e, 1, -1, &block);
			printf("  child: epoll_pwait with SIGUSR1 blocked = %d tag %lu, handler ran %d time(s)\n",
			       n, n > 0 ? (unsigned long)e.data.u64 : 0UL, g_usr1);
			io_post(ack[1]);
			_exit(0);
		}
		io_close(ack[1]);
		io_wait_sleeping(pid);
		kill(pid, SIGUSR1);
		/* The signal stays pending; data ends the wait. */
		{
			struct timespec ts = { 0, 30 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		io_wait_sleeping(pid);
		if (write(sv[1], "d", 1) != 1)
			die("write");
		io_wait(ack[0]);
		io_drain(sv[0]);
		show_status_io("child", io_reap(pid));
		io_close(ack[0]);
	}

	CASE("epoll_closed_fd_vanishes");
	IOSHOW(write(sv[1], "x", 1));
	ep_show("socket readable", ep, 4, 0);
	{
		int d = dup(sv[0]);
		io_close(sv[0]);
		ep_show("registered fd closed, a dup open", ep, 4, 0);
		ep_ctl("DEL by the dup", ep, EPOLL_CTL_DEL, d, 0, 0);
		ep_ctl("MOD by the dup", ep, EPOLL_CTL_MOD, d, EPOLLIN, 52);
		int q[2];
		io_pipe(q);
		if ((pid = io_fork()) == 0) {
			char c;
			io_close(q[1]);
			_exit(read(q[0], &c, 1) != 0); /* holds a copy of d until the parent's close */
		}
		io_close(q[0]);
		io_close(d);
		ep_show("every fd of the parent closed, the child holds one", ep, 4, 0);
		io_close(q[1]);
		show_status_io("child", io_reap(pid));
		ep_show("last copy closed", ep, 4, 0);
	}
	ep_show("the pipe, still registered", ep, 4, 0);
	IOSHOW(write(p[1], "z", 1));
	ep_show("the pipe written", ep, 4, 0);
	io_close(p[0]);
	ep_show("the pipe's read end closed", ep, 4, 0);
	io_close(p[1]);
	io_close(sv[1]);
	io_close(ep);

	sk_cleanup();
	return 0;
}
