/* epoll interests taken in an AF_UNIX socket before its connect (as nginx does with its
 * upstreams): stream and seqpacket, level- and edge-triggered, ONESHOT, blocking and
 * non-blocking connects (a full backlog's EAGAIN, then a retry), the server accepting and
 * replying after the first wait, replies arriving while the client sleeps and while it is
 * between waits; edge-triggered connecting ends added while the connection waits to be
 * accepted and after; edge-triggered interests on both ends of a connection.
 */
#include "common.h"

/* A server child for listener l: for each command byte read from cmd, 'a' accepts the next
 * connection (replies go to the latest), 'w' writes the next reply, 's' writes it once the
 * parent sleeps, 'c' closes the connection, 'q' exits; each other is acknowledged on ack once done. */
static pid_t server(int l, int cmd, int ack)
{
	pid_t parent = getpid();
	pid_t pid = io_fork();
	if (pid)
		return pid;
	int c = -1, n = 0;
	char op, reply[32];
	while (read(cmd, &op, 1) == 1) {
		switch (op) {
		case 'a':
			c = sk_accept(l);
			break;
		case 's':
			io_wait_sleeping(parent);
			/* fall through */
		case 'w':
			n++;
			snprintf(reply, sizeof reply, "reply%d", n);
			if (write(c, reply, strlen(reply)) != (ssize_t)strlen(reply))
				die("server write");
			break;
		case 'c':
			io_close(c);
			break;
		case 'q':
			_exit(0);
		}
		io_post(ack);
	}
	_exit(SETUP_FAIL);
}

static int g_cmd[2], g_ack[2];

/* A command to the server, and its acknowledgement ('s': the parent goes to sleep first, so
 * the acknowledgement is taken by the caller after its wait; 'q' has none). */
static void tell(char op)
{
	if (write(g_cmd[1], &op, 1) != 1)
		die("tell");
	if (op != 's' && op != 'q')
		io_wait(g_ack[0]);
}

/* A receive of up to len bytes (records: one) that does not wait, printed. */
static void take(const char *what, int fd, size_t len)
{
	char buf[64];
	errno = 0;
	ssize_t n = recv(fd, buf, len < sizeof buf ? len : sizeof buf, MSG_DONTWAIT);
	if (n < 0)
		printf("  %s: read = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s: read = %zd \"%.*s\"\n", what, n, (int)n, buf);
}

static const char *type_name(int type)
{
	return type == SOCK_STREAM ? "stream" : "seqpacket";
}

/* One case: a listener at SK_DIR/name (backlog) with its server child, an unconnected
 * socket of the listener's type and a new epoll set. */
struct conn {
	struct sockaddr_un a;
	socklen_t len;
	int l, s, ep;
	pid_t srv;
};

static struct conn begin(const char *name, int type, int backlog)
{
	struct conn c;
	CASE(name);
	c.len = sk_path(&c.a, name);
	c.l = sk_listener(type, &c.a, c.len, backlog);
	c.srv = server(c.l, g_cmd[0], g_ack[1]);
	c.s = sk_socket(type);
	c.ep = epoll_create1(0);
	if (c.ep < 0)
		die("epoll_create1");
	return c;
}

static void connect_show(struct conn *c)
{
	errno = 0;
	long r = connect(c->s, (struct sockaddr *)&c->a, c->len);
	show_io("connect", r, errno);
}

/* The server sends a reply once the client sleeps in this wait; the client reaps the
 * acknowledgement after it. */
static void reply_while_asleep(struct conn *c)
{
	tell('s');
	ep_show("reply sent while asleep", c->ep, 4, 5000);
	io_wait(g_ack[0]);
}

static void end(struct conn *c)
{
	tell('q');
	show_status_io("server", io_reap(c->srv));
	io_close(c->ep);
	io_close(c->s);
	io_close(c->l);
}

/* ADD before connect, the server accepting after the first wait and replying while the client
 * sleeps, then between its waits, then closing. */
static void add_before_connect(int type, int et, int nonblocking)
{
	char name[64];
	snprintf(name, sizeof name, "add_before_connect_%s_%s_%s", type_name(type), et ? "et" : "lt",
		 nonblocking ? "nonblocking" : "blocking");
	struct conn c = begin(name, type, 4);
	if (nonblocking)
		io_set_nonblock(c.s, 1);
	/* Level-triggered without EPOLLOUT, which would always be ready. */
	unsigned events = et ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET : EPOLLIN | EPOLLRDHUP;
	ep_ctl("ADD before connect", c.ep, EPOLL_CTL_ADD, c.s, events, 1);
	connect_show(&c);
	ep_show("first wait", c.ep, 4, et ? 5000 : 0);
	ep_show("second wait", c.ep, 4, 0);
	tell('a');
	ep_show("accepted", c.ep, 4, 0);
	reply_while_asleep(&c);
	take("client", c.s, 2);
	ep_show("part of it read", c.ep, 4, 0);
	tell('w');
	ep_show("reply sent between waits", c.ep, 4, 0);
	take("client", c.s, 64);
	take("client", c.s, 64);
	ep_show("all read", c.ep, 4, 0);
	/* Unread by the server when it closes: ECONNRESET pending, EPOLLERR. */
	IOSHOW(write(c.s, "req", 3));
	tell('c');
	ep_show("server closed", c.ep, 4, 5000);
	end(&c);
}

int main(void)
{
	sk_setup();
	alarm(30);
	signal(SIGPIPE, SIG_IGN);
	struct conn c;
	io_pipe(g_cmd);
	io_pipe(g_ack);

	for (int type = SOCK_STREAM; type <= SOCK_SEQPACKET; type += SOCK_SEQPACKET - SOCK_STREAM)
		for (int et = 0; et <= 1; et++)
			for (int nb = 0; nb <= 1; nb++)
				add_before_connect(type, et, nb);

	c = begin("nonblocking_connect_full_backlog_then_retry", SOCK_STREAM, 0);
	{
		int filler = sk_connect(SOCK_STREAM, &c.a, c.len);
		io_set_nonblock(c.s, 1);
		ep_ctl("ADD EPOLLIN|EPOLLOUT|EPOLLET before connect", c.ep, EPOLL_CTL_ADD, c.s,
		       EPOLLIN | EPOLLOUT | EPOLLET, 2);
		connect_show(&c);
		tell('a'); /* the filler */
		tell('c');
		connect_show(&c);
		ep_show("first wait", c.ep, 4, 5000);
		tell('a');
		reply_while_asleep(&c);
		take("client", c.s, 64);
		io_close(filler);
	}
	end(&c);

	c = begin("oneshot_before_connect", SOCK_STREAM, 4);
	ep_ctl("ADD EPOLLIN|EPOLLONESHOT before connect", c.ep, EPOLL_CTL_ADD, c.s, EPOLLIN | EPOLLONESHOT, 3);
	connect_show(&c);
	tell('a');
	reply_while_asleep(&c);
	tell('w');
	ep_show("disarmed", c.ep, 4, 0);
	ep_ctl("MOD re-arms", c.ep, EPOLL_CTL_MOD, c.s, EPOLLIN | EPOLLONESHOT, 4);
	ep_show("re-armed", c.ep, 4, 0);
	take("client", c.s, 64);
	end(&c);

	/* Fired on the unconnected socket's hang-up: it stays disarmed through the connect. */
	c = begin("oneshot_fired_before_connect", SOCK_STREAM, 4);
	ep_ctl("ADD EPOLLIN|EPOLLONESHOT before connect", c.ep, EPOLL_CTL_ADD, c.s, EPOLLIN | EPOLLONESHOT, 8);
	ep_show("unconnected (hung up)", c.ep, 4, 0);
	connect_show(&c);
	tell('a');
	tell('w');
	tell('c');
	ep_show("reply and hang-up, disarmed", c.ep, 4, 0);
	ep_ctl("MOD re-arms", c.ep, EPOLL_CTL_MOD, c.s, EPOLLIN | EPOLLONESHOT, 9);
	ep_show("re-armed", c.ep, 4, 0);
	ep_show("disarmed again", c.ep, 4, 0);
	take("client", c.s, 64);
	end(&c);

	/* Connect first: the interest is taken while the connection waits to be accepted, or
	 * after; replies arrive after the first wait. */
	for (int late = 0; late <= 1; late++) {
		c = begin(late ? "et_connecting_end_added_after_accept" : "et_connecting_end_added_before_accept",
			  SOCK_STREAM, 4);
		connect_show(&c);
		if (late)
			tell('a');
		ep_ctl("ADD EPOLLIN|EPOLLET", c.ep, EPOLL_CTL_ADD, c.s, EPOLLIN | EPOLLET, 5);
		ep_show("first wait", c.ep, 4, 0);
		if (!late)
			tell('a');
		for (int round = 1; round <= 3; round++) {
			reply_while_asleep(&c);
			ep_show("nothing new", c.ep, 4, 0);
			tell('w');
			ep_show("reply sent between waits", c.ep, 4, 0);
			take("client", c.s, 64);
		}
		end(&c);
	}

	/* Both ends edge-triggered, each message arriving while its receiver is between waits. The
	 * server here is a child of its own; the command server only stands by. */
	c = begin("et_both_ends_replies_between_waits", SOCK_STREAM, 4);
	{
		/* go: the client's turn is over; back: the server's. */
		int go[2], back[2];
		pid_t pid;
		io_pipe(go);
		io_pipe(back);
		ep_ctl("client ADD EPOLLIN|EPOLLET before connect", c.ep, EPOLL_CTL_ADD, c.s, EPOLLIN | EPOLLET, 6);
		if ((pid = io_fork()) == 0) {
			int fd = sk_accept(c.l);
			int sep = epoll_create1(0);
			if (epoll_ctl(sep, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 7 }))
				die("epoll_ctl");
			for (int round = 1; round <= 3; round++) {
				io_wait(go[0]);
				ep_show("server: request between waits", sep, 4, 0);
				take("server", fd, 64);
				ep_show("server: nothing new", sep, 4, 0);
				if (write(fd, "pong", 4) != 4)
					die("write");
				io_post(back[1]);
			}
			io_wait(go[0]);
			_exit(0);
		}
		connect_show(&c);
		for (int round = 1; round <= 3; round++) {
			if (write(c.s, "ping", 4) != 4)
				die("write");
			io_post(go[1]);
			io_wait(back[0]);
			ep_show("client: reply between waits", c.ep, 4, 0);
			take("client", c.s, 64);
			ep_show("client: nothing new", c.ep, 4, 0);
		}
		io_post(go[1]);
		show_status_io("replying server", io_reap(pid));
		closep(go);
		closep(back);
	}
	end(&c);

	closep(g_cmd);
	closep(g_ack);
	sk_cleanup();
	return 0;
}
