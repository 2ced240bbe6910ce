/* The order of epoll's ready list beyond epoll_scale: pipes and AF_UNIX sockets mixed, hang-ups
 * and EPOLLRDHUP behind level-triggered items still listed from a harvest, ONESHOT items
 * re-armed, DEL and MOD of items already on the list, maxevents 1 taking turns, EPOLLOUT in the
 * order full pipes were drained, and poll over 2000 socket ends. Events print in the order each
 * call returned them. */
#include "common.h"

static void mod(int ep, int fd, unsigned events, unsigned long tag)
{
	struct epoll_event e = { .events = events, .data.u64 = tag };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e))
		die("epoll_ctl MOD");
}

int main(void)
{
	sk_setup();
	alarm(30);
	signal(SIGPIPE, SIG_IGN);
	int ep = epoll_create1(0), p[3][2], s[3][2];
	for (int i = 0; i < 3; i++) {
		if (pipe(p[i]))
			die("pipe");
		sk_pair(SOCK_STREAM, s[i]);
		ep_add(ep, p[i][0], EPOLLIN, 10 + i);
		ep_add(ep, s[i][0], EPOLLIN | EPOLLRDHUP, 20 + i);
	}

	CASE("pipes_and_sockets_in_ready_order");
	io_post(s[2][1]);
	io_post(p[1][1]);
	io_post(s[0][1]);
	io_post(p[2][1]);
	ep_ordered("all", ep, 16, 0);

	CASE("maxevents_1_takes_turns");
	ep_ordered("first", ep, 1, 0);
	ep_ordered("second", ep, 1, 0);
	ep_ordered("third", ep, 1, 0);
	ep_ordered("fourth", ep, 1, 0);
	ep_ordered("first again", ep, 1, 0);

	CASE("del_of_a_listed_item");
	struct epoll_event none;
	IOSHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[1][0], &none));
	ep_ordered("without it", ep, 16, 0);
	ep_add(ep, p[1][0], EPOLLIN, 11);
	ep_ordered("added again, ready: at the tail", ep, 16, 0);

	CASE("mod_of_a_listed_item_keeps_its_place");
	mod(ep, s[0][0], EPOLLIN | EPOLLRDHUP, 30);
	ep_ordered("new data in place", ep, 16, 0);
	mod(ep, s[0][0], EPOLLIN | EPOLLRDHUP, 20);

	CASE("drained_then_written_again");
	io_wait(s[2][0]);
	io_wait(p[1][0]);
	io_wait(s[0][0]);
	io_wait(p[2][0]);
	ep_ordered("none", ep, 16, 0);
	io_post(p[0][1]);
	io_post(s[1][1]);
	ep_ordered("two", ep, 16, 0);
	io_wait(p[0][0]);
	io_wait(s[1][0]);

	CASE("hangups_behind_items_still_listed");
	close(s[1][1]);
	shutdown(s[2][1], SHUT_WR);
	close(p[0][1]);
	close(s[0][1]);
	ep_ordered("hang-ups", ep, 16, 0);

	CASE("oneshot_items_rearmed");
	int ep2 = epoll_create1(0), q[3][2];
	for (int i = 0; i < 3; i++) {
		if (pipe(q[i]))
			die("pipe");
		ep_add(ep2, q[i][0], EPOLLIN | EPOLLONESHOT, 40 + i);
	}
	io_post(q[2][1]);
	io_post(q[0][1]);
	ep_ordered("fired", ep2, 16, 0);
	ep_ordered("disabled", ep2, 16, 0);
	io_post(q[1][1]);
	mod(ep2, q[0][0], EPOLLIN | EPOLLONESHOT, 40);
	ep_ordered("q1 fired, q0 re-armed while ready", ep2, 16, 0);
	mod(ep2, q[2][0], EPOLLIN | EPOLLONESHOT, 42);
	mod(ep2, q[1][0], EPOLLIN | EPOLLONESHOT, 41);
	ep_ordered("re-armed in MOD order", ep2, 16, 0);

	CASE("epollout_in_the_order_pipes_were_drained");
	int ep3 = epoll_create1(0), w[3][2];
	char buf[65536];
	memset(buf, 'y', sizeof buf);
	for (int i = 0; i < 3; i++) {
		if (pipe2(w[i], O_NONBLOCK))
			die("pipe");
		while (write(w[i][1], buf, sizeof buf) > 0)
			;
		ep_add(ep3, w[i][1], EPOLLOUT, 50 + i);
	}
	ep_ordered("all full", ep3, 16, 0);
	for (int k = 2; k >= 0; k -= 2)
		while (read(w[k][0], buf, sizeof buf) > 0)
			;
	while (read(w[1][0], buf, sizeof buf) > 0)
		;
	ep_ordered("writable", ep3, 16, 0);

	CASE("poll_over_2000_socket_ends");
	static struct pollfd fds[2000];
	for (int i = 0; i < 1000; i++) {
		int sv[2];
		sk_pair(SOCK_STREAM, sv);
		fds[2 * i] = (struct pollfd){ sv[0], POLLIN, 0 };
		fds[2 * i + 1] = (struct pollfd){ sv[1], POLLIN | POLLOUT, 0 };
	}
	io_post(fds[2 * 333 + 1].fd);
	close(fds[2 * 777 + 1].fd);
	fds[2 * 777 + 1].fd = -1;
	int n = poll(fds, 2000, 0);
	int out = 0;
	printf("  poll = %d\n", n);
	for (int i = 0; i < 2000; i += 2)
		if (fds[i].revents)
			printf("  end 0 of pair %d: %s\n", i / 2, pollbits(fds[i].revents));
	for (int i = 1; i < 2000; i += 2)
		out += fds[i].revents == POLLOUT;
	printf("  writable ends: %d\n", out);
	for (int i = 0; i < 2000; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	sk_cleanup();
	return 0;
}
