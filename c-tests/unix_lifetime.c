/* A connection's life beyond its first fd, and epoll and poll around it (issue 17): thousands
 * of connect-accept-close cycles in one process, a connection kept by a dup, a fork child or a
 * process it was passed to after the fd that made it is closed, a listener closed with
 * connects still waiting (and one kept by a dup or a fork child), a listening socket's
 * readiness, EPOLLRDHUP and EPOLLHUP for each way of shutting a connection down,
 * EPOLLONESHOT re-armed while another process writes, EPOLLEXCLUSIVE across processes on one
 * connection, accept order of interleaved clients, poll over pipes and sockets mixed, and a
 * peer killed unseen. */
#include "common.h"

/* One line of what reading fd gives now (non-blocking): the data, EOF, or the error. */
static void peek_state(const char *what, int fd)
{
	char buf[64];
	errno = 0;
	long n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0)
		printf("  %s: -1 %s\n", what, errname_io(errno));
	else if (n == 0)
		printf("  %s: EOF\n", what);
	else
		printf("  %s: %ld \"%.*s\"\n", what, n, (int)n, buf);
}

/* A blocking send of a short text, printed on failure only. */
static void say(int fd, const char *text)
{
	long n = send(fd, text, strlen(text), MSG_NOSIGNAL);
	if (n != (long)strlen(text))
		printf("  send \"%s\" = %ld %s\n", text, n, n < 0 ? errname_io(errno) : "");
}

/* A blocking recv of a short text into buf (NUL-terminated), after waiting for it. */
static long hear(int fd, char *buf, size_t cap)
{
	sk_wait_readable(fd);
	long n = recv(fd, buf, cap - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

static int listener_at(const char *name, struct sockaddr_un *a, socklen_t *len)
{
	*len = sk_path(a, name);
	return sk_listener(SOCK_STREAM, a, *len, 64);
}

static void cycles(void)
{
	CASE("connect_accept_close_3000_times");
	struct sockaddr_un a;
	socklen_t len;
	int l = listener_at("cycles", &a, &len);
	int bad = 0, eof = 0;
	for (int i = 0; i < 3000; i++) {
		int c = sk_connect(SOCK_STREAM, &a, len);
		int s = sk_accept(l);
		unsigned char b = (unsigned char)i, got = 0;
		if (send(c, &b, 1, 0) != 1 || recv(s, &got, 1, 0) != 1 || got != b)
			bad++;
		if (send(s, &b, 1, 0) != 1 || recv(c, &got, 1, 0) != 1 || got != b)
			bad++;
		/* Either end first, the other then sees the end of the stream. */
		int first = i % 2 ? c : s, second = i % 2 ? s : c;
		io_close(first);
		eof += recv(second, &got, 1, 0) == 0;
		io_close(second);
	}
	printf("  wrong bytes %d, ends seen %d\n", bad, eof);
	io_close(l);
}

/* A connection whose accepted fd is closed while something else still holds it (`how`: a dup,
 * a fork child, or a process started before the connection that it was passed to): the peer
 * goes on talking to whatever holds it, and sees its end only once that goes too. */
static void survives(const char *how)
{
	struct sockaddr_un a;
	socklen_t len;
	char buf[64];
	int passed = !strcmp(how, "passed"), sync[2], pair[2];
	pid_t pid = 0;
	io_pipe(sync);
	sk_pair(SOCK_STREAM, pair);
	if (passed && (pid = io_fork()) == 0) {
		int fd, nfds = 0, mflags = 0;
		char tok[8];
		if (sk_recv_fds(pair[1], tok, sizeof tok, &fd, &nfds, 1, 0, &mflags) != 1 || nfds != 1)
			_exit(3);
		io_wait(sync[0]);
		printf("  receiver reads %ld \"%s\"\n", hear(fd, buf, sizeof buf), buf);
		fflush(stdout);
		say(fd, "from the receiver");
		printf("  receiver reads %ld \"%s\"\n", hear(fd, buf, sizeof buf), buf);
		fflush(stdout);
		_exit(0);
	}
	int l = listener_at(how, &a, &len);
	int c = sk_connect(SOCK_STREAM, &a, len);
	int s = sk_accept(l);
	say(c, "before");
	if (passed) {
		if (sk_send_fds(pair[0], &s, 1, "x", 1) != 1)
			die("send fd");
		io_close(s);
		peek_state("client after the sender's close", c);
		io_post(sync[1]);
		printf("  client reads %ld \"%s\"\n", hear(c, buf, sizeof buf), buf);
		fflush(stdout);
		say(c, "to the receiver");
		show_status_io("receiver", io_reap(pid));
	} else if (!strcmp(how, "dup")) {
		int d = dup(s);
		io_close(s);
		peek_state("client after the close", c);
		printf("  dup reads %ld \"%s\"\n", hear(d, buf, sizeof buf), buf);
		say(d, "through the dup");
		printf("  client reads %ld \"%s\"\n", hear(c, buf, sizeof buf), buf);
		say(c, "again");
		printf("  dup reads %ld \"%s\"\n", hear(d, buf, sizeof buf), buf);
		io_close(d);
	} else {
		if ((pid = io_fork()) == 0) {
			io_wait(sync[0]);
			printf("  child reads %ld \"%s\"\n", hear(s, buf, sizeof buf), buf);
			fflush(stdout);
			say(s, "from the child");
			printf("  child reads %ld \"%s\"\n", hear(s, buf, sizeof buf), buf);
			fflush(stdout);
			_exit(0);
		}
		io_close(s);
		peek_state("client after the parent's close", c);
		io_post(sync[1]);
		printf("  client reads %ld \"%s\"\n", hear(c, buf, sizeof buf), buf);
		fflush(stdout);
		say(c, "to the child");
		show_status_io("child", io_reap(pid));
	}
	sk_wait_readable(c);
	peek_state("client once every holder closed", c);
	io_close(c);
	io_close(l);
	closep(sync);
	closep(pair);
}

static void kept_connections(void)
{
	CASE("accepted_fd_closed_its_dup_keeps_the_connection");
	survives("dup");
	CASE("accepted_fd_closed_a_fork_child_keeps_the_connection");
	survives("forked");
	CASE("accepted_fd_closed_after_passing_it");
	survives("passed");
}

static void listeners(void)
{
	struct sockaddr_un a;
	socklen_t len;
	char buf[64];

	CASE("listener_closed_with_connects_waiting");
	int l = listener_at("waiting", &a, &len);
	int c1 = sk_connect(SOCK_STREAM, &a, len);
	int c2 = sk_connect(SOCK_STREAM, &a, len);
	say(c1, "never read");
	io_close(l);
	peek_state("first client", c1);
	peek_state("first client again", c1);
	IOSHOW(send(c2, "x", 1, MSG_NOSIGNAL));
	peek_state("second client", c2);
	io_close(c1);
	io_close(c2);
	unlink(a.sun_path);
	l = listener_at("waiting", &a, &len);
	c1 = sk_connect(SOCK_STREAM, &a, len);
	int s = sk_accept(l);
	say(c1, "a new listener at the same path");
	printf("  read %ld \"%s\"\n", hear(s, buf, sizeof buf), buf);
	io_close(s);
	io_close(c1);
	io_close(l);

	CASE("listener_closed_its_dup_accepts");
	l = listener_at("listener-dup", &a, &len);
	int d = dup(l);
	c1 = sk_connect(SOCK_STREAM, &a, len);
	io_close(l);
	c2 = sk_connect(SOCK_STREAM, &a, len);
	say(c1, "one");
	say(c2, "two");
	for (int i = 0; i < 2; i++) {
		s = sk_accept(d);
		printf("  accepted reads %ld \"%s\"\n", hear(s, buf, sizeof buf), buf);
		say(s, "ok");
		io_close(s);
	}
	printf("  first client reads %ld \"%s\"\n", hear(c1, buf, sizeof buf), buf);
	printf("  second client reads %ld \"%s\"\n", hear(c2, buf, sizeof buf), buf);
	io_close(c1);
	io_close(c2);
	io_close(d);

	CASE("listener_closed_by_the_parent_a_fork_child_accepts");
	l = listener_at("listener-forked", &a, &len);
	int sync[2];
	io_pipe(sync);
	pid_t pid = io_fork();
	if (pid == 0) {
		io_wait(sync[0]);
		for (int i = 0; i < 2; i++) {
			int fd = sk_accept(l);
			long n = hear(fd, buf, sizeof buf);
			printf("  child accepted, reads %ld \"%s\"\n", n, buf);
			fflush(stdout);
			say(fd, "hello from the child");
			close(fd);
		}
		_exit(0);
	}
	io_close(l);
	c1 = sk_connect(SOCK_STREAM, &a, len);
	say(c1, "first");
	io_post(sync[1]);
	printf("  client reads %ld \"%s\"\n", hear(c1, buf, sizeof buf), buf);
	fflush(stdout);
	c2 = sk_connect(SOCK_STREAM, &a, len);
	say(c2, "second");
	printf("  client reads %ld \"%s\"\n", hear(c2, buf, sizeof buf), buf);
	show_status_io("child", io_reap(pid));
	io_close(c1);
	io_close(c2);
	closep(sync);
}

static void listener_readiness(void)
{
	CASE("epoll_on_a_listening_socket");
	struct sockaddr_un a;
	socklen_t len;
	int l = listener_at("ready", &a, &len);
	int ep = epoll_create1(0), et = epoll_create1(0);
	ep_ctl("ADD level", ep, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
	ep_ctl("ADD edge", et, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLET, 2);
	ep_show("none waiting", ep, 16, 0);
	ep_show("edge, none waiting", et, 16, 0);
	int c1 = sk_connect(SOCK_STREAM, &a, len);
	ep_show("one waiting", ep, 16, 0);
	ep_show("edge, one waiting", et, 16, 0);
	ep_show("edge, again", et, 16, 0);
	int c2 = sk_connect(SOCK_STREAM, &a, len);
	ep_show("two waiting", ep, 16, 0);
	ep_show("edge, a second connect", et, 16, 0);
	int s1 = sk_accept(l);
	ep_show("one accepted", ep, 16, 0);
	int s2 = sk_accept(l);
	ep_show("both accepted", ep, 16, 0);
	ep_show("edge, both accepted", et, 16, 0);
	io_close(s1);
	io_close(s2);
	io_close(c1);
	io_close(c2);
	shutdown(l, SHUT_RDWR);
	ep_show("listener shut down", ep, 16, 0);
	io_close(l);
	ep_show("listener closed", ep, 16, 0);
	io_close(ep);
	io_close(et);
}

/* A fresh connection through a listener at `name`: c the client's end, s the server's. */
static void conn(const char *name, int *c, int *s)
{
	struct sockaddr_un a;
	socklen_t len;
	int l = listener_at(name, &a, &len);
	*c = sk_connect(SOCK_STREAM, &a, len);
	*s = sk_accept(l);
	io_close(l);
}

static void shutdowns(void)
{
	CASE("epollrdhup_and_epollhup_for_each_shutdown");
	static const struct {
		const char *what;
		int by_peer, how;
	} ways[] = {
		{ "peer SHUT_WR", 1, SHUT_WR },   { "peer SHUT_RD", 1, SHUT_RD },
		{ "peer SHUT_RDWR", 1, SHUT_RDWR }, { "own SHUT_WR", 0, SHUT_WR },
		{ "own SHUT_RD", 0, SHUT_RD },     { "own SHUT_RDWR", 0, SHUT_RDWR },
		{ "peer closed", 1, -1 },
	};
	for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
		int c, s;
		char name[32];
		snprintf(name, sizeof name, "shut%zu", i);
		conn(name, &c, &s);
		int ep = epoll_create1(0);
		ep_ctl("ADD", ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, i);
		ep_show("connected", ep, 16, 0);
		if (ways[i].how < 0)
			io_close(s);
		else
			shutdown(ways[i].by_peer ? s : c, ways[i].how);
		ep_show(ways[i].what, ep, 16, 0);
		show_poll1(ways[i].what, c, POLLIN | POLLOUT | POLLRDHUP);
		io_close(ep);
		io_close(c);
		if (ways[i].how >= 0)
			io_close(s);
	}
}

static void oneshot_other_writer(void)
{
	CASE("oneshot_rearmed_while_another_process_writes");
	int c, s, sync[2], done[2];
	conn("oneshot", &c, &s);
	io_pipe(sync);
	io_pipe(done);
	int ep = epoll_create1(0);
	ep_ctl("ADD", ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLONESHOT, 5);
	pid_t pid = io_fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++) {
			io_wait(sync[0]);
			say(s, "m");
			io_post(done[1]);
		}
		/* Its end stays open until the last look. */
		io_wait(sync[0]);
		_exit(0);
	}
	io_close(s);
	io_post(sync[1]);
	io_wait(done[0]);
	ep_show("first message", ep, 16, 1000);
	io_post(sync[1]);
	io_wait(done[0]);
	ep_show("second, disabled", ep, 16, 0);
	ep_ctl("MOD", ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, 6);
	ep_show("re-armed with data queued", ep, 16, 0);
	ep_show("fired again", ep, 16, 0);
	char buf[8];
	IOSHOW(recv(c, buf, sizeof buf, 0));
	ep_ctl("MOD", ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, 7);
	ep_show("re-armed, drained", ep, 16, 0);
	io_post(sync[1]);
	io_wait(done[0]);
	ep_show("third message", ep, 16, 1000);
	io_post(sync[1]);
	show_status_io("writer", io_reap(pid));
	ep_ctl("MOD", ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, 8);
	ep_show("writer gone", ep, 16, 0);
	io_close(ep);
	io_close(c);
	closep(sync);
	closep(done);
}

static void exclusive_processes(void)
{
	CASE("epollexclusive_three_processes_one_connection");
	int c, s, res[2], ready[2];
	conn("exclusive", &c, &s);
	io_pipe(res);
	io_pipe(ready);
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		pids[i] = io_fork();
		if (pids[i] == 0) {
			int ep = epoll_create1(0);
			struct epoll_event e = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = i };
			if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &e))
				_exit(3);
			io_post(ready[1]);
			char r = epoll_wait(ep, &e, 1, 1500) == 1 ? 'w' : 't';
			if (write(res[1], &r, 1) != 1)
				_exit(4);
			_exit(0);
		}
		/* One at a time: the kernel wakes the exclusive waiter added first. */
		io_wait(ready[0]);
		io_wait_sleeping(pids[i]);
	}
	say(c, "one message");
	int woken = 0, timed_out = 0;
	for (int i = 0; i < 3; i++) {
		char r;
		if (read(res[0], &r, 1) != 1)
			die("read result");
		woken += r == 'w';
		timed_out += r == 't';
	}
	printf("  woken %d, timed out %d\n", woken, timed_out);
	for (int i = 0; i < 3; i++)
		io_reap(pids[i]);
	io_close(c);
	io_close(s);
	closep(res);
	closep(ready);
}

static void interleaved_clients(void)
{
	CASE("accept_order_of_eight_clients_interleaved");
	enum { CLIENTS = 8, EACH = 5 };
	struct sockaddr_un a;
	socklen_t len;
	int l = listener_at("order", &a, &len);
	int turn[CLIENTS][2], done[2];
	io_pipe(done);
	pid_t pids[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		io_pipe(turn[i]);
		pids[i] = io_fork();
		if (pids[i] == 0) {
			int fds[EACH];
			for (int j = 0; j < EACH; j++) {
				io_wait(turn[i][0]);
				fds[j] = sk_connect(SOCK_STREAM, &a, len);
				char id[16];
				snprintf(id, sizeof id, "%d.%d", i, j);
				say(fds[j], id);
				io_post(done[1]);
			}
			/* Kept open until the server read them all. */
			io_wait(turn[i][0]);
			_exit(0);
		}
	}
	/* Round j: the clients in a different order each time. */
	for (int j = 0; j < EACH; j++)
		for (int k = 0; k < CLIENTS; k++) {
			int i = (k * 3 + j * 5) % CLIENTS;
			io_post(turn[i][1]);
			io_wait(done[0]);
		}
	printf("  accepted:");
	for (int n = 0; n < CLIENTS * EACH; n++) {
		int s = sk_accept(l);
		char buf[16];
		hear(s, buf, sizeof buf);
		printf(" %s", buf);
		io_close(s);
	}
	printf("\n");
	for (int i = 0; i < CLIENTS; i++) {
		io_post(turn[i][1]);
		io_reap(pids[i]);
		closep(turn[i]);
	}
	closep(done);
	io_close(l);
}

static void poll_mixed(void)
{
	CASE("poll_over_2000_pipes_and_sockets_mixed");
	enum { N = 500 };
	static struct pollfd fds[4 * N];
	static int kind[4 * N];
	struct sockaddr_un a;
	socklen_t len;
	int l = listener_at("pollmix", &a, &len);
	for (int i = 0; i < N; i++) {
		int p[2], sv[2];
		io_pipe(p);
		if (i % 2)
			sk_pair(SOCK_STREAM, sv);
		else {
			sv[0] = sk_connect(SOCK_STREAM, &a, len);
			sv[1] = sk_accept(l);
		}
		fds[4 * i] = (struct pollfd){ p[0], POLLIN, 0 };
		fds[4 * i + 1] = (struct pollfd){ p[1], POLLOUT, 0 };
		fds[4 * i + 2] = (struct pollfd){ sv[0], POLLIN | POLLRDHUP, 0 };
		fds[4 * i + 3] = (struct pollfd){ sv[1], POLLIN | POLLOUT, 0 };
		for (int k = 0; k < 4; k++)
			kind[4 * i + k] = k;
	}
	for (int i = 0; i < N; i += 7)
		io_post(fds[4 * i + 1].fd);
	for (int i = 3; i < N; i += 11)
		io_post(fds[4 * i + 3].fd);
	for (int i = 5; i < N; i += 13) {
		close(fds[4 * i + 3].fd);
		fds[4 * i + 3].fd = -1;
	}
	int n = poll(fds, 4 * N, 0);
	printf("  poll = %d\n", n);
	static const char *names[4] = { "pipe read ends", "pipe write ends", "socket ends", "their peers" };
	for (int k = 0; k < 4; k++) {
		int ready = 0;
		char first[256] = "";
		for (int i = 0; i < 4 * N; i++)
			if (kind[i] == k && fds[i].revents) {
				if (ready++ < 3)
					snprintf(first + strlen(first), sizeof first - strlen(first), " #%d %s", i / 4,
						 pollbits(fds[i].revents));
			}
		printf("  %s ready: %d;%s\n", names[k], ready, first);
	}
	for (int i = 0; i < 4 * N; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	io_close(l);
}

/* A peer killed, not reaped, so that only the kernel's side of the fds tells of it: a reader
 * that retried without blocking just before the kill (and found nothing) learns of the death
 * through poll or epoll_wait, and its next receive (or read) is EOF at once. */
static void killed_peers(void)
{
	const char *waits[] = { "poll", "epoll_wait" };
	for (int how = 0; how < 2; how++) {
		for (int pipe_too = 0; pipe_too < 2; pipe_too++) {
			const char *names[2][2] = { { "stream_peer_killed_unreaped_poll", "pipe_writer_killed_unreaped_poll" },
						    { "stream_peer_killed_unreaped_epoll", "pipe_writer_killed_unreaped_epoll" } };
			CASE(names[how][pipe_too]);
			printf("  waiting with %s\n", waits[how]);
			int sv[2];
			if (pipe_too) {
				if (pipe(sv))
					die("pipe");
			} else {
				sk_pair(SOCK_STREAM, sv);
			}
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				close(sv[0]);
				if (write(sv[1], "hi", 2) != 2)
					_exit(1);
				pause();
				_exit(0);
			}
			close(sv[1]);
			io_set_nonblock(sv[0], 1);
			struct pollfd pf = { sv[0], POLLIN, 0 };
			poll(&pf, 1, 5000);
			char buf[16];
			long n = read(sv[0], buf, sizeof buf);
			printf("  read = %ld\n", n);
			for (int i = 0; i < 3; i++)
				IOSHOW(read(sv[0], buf, sizeof buf));
			kill(pid, SIGKILL);
			if (how == 0) {
				pf.revents = 0;
				int r = poll(&pf, 1, 5000);
				printf("  poll = %d revents=%s\n", r, pollbits(pf.revents));
			} else {
				int ep = epoll_create1(0);
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 7 }, out;
				epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
				int r = epoll_wait(ep, &out, 1, 5000);
				printf("  epoll_wait = %d events=%s\n", r, r == 1 ? pollbits(out.events) : "-");
				close(ep);
			}
			IOSHOW(read(sv[0], buf, sizeof buf));
			waitpid(pid, NULL, 0);
			close(sv[0]);
		}
	}
}

int main(void)
{
	sk_setup();
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	cycles();
	kept_connections();
	listeners();
	listener_readiness();
	shutdowns();
	oneshot_other_writer();
	exclusive_processes();
	interleaved_clients();
	poll_mixed();
	killed_peers();
	sk_cleanup();
	return 0;
}
