/* Blocking msgsnd and msgrcv: a message handed straight to a sleeping
 * receiver (pipelined_send) in receiver order and by type, E2BIG and
 * MSG_NOERROR for a receiver handed a message too big, senders blocked by
 * bytes and by count and woken when their message fits, EIDRM for sleepers
 * of a removed queue, EINTR with and without SA_RESTART, signals that do not
 * interrupt, IPC_SET waking sleepers, and SIGKILLed sleepers, which neither
 * take a message nor keep one. Helpers are children, each asleep in its call
 * before the next step; their results are printed when they are reaped. */
#include "common.h"

static void rmid(int id)
{
	SHOW(msgctl(id, IPC_RMID, NULL));
}

static void fill(int id, long type, size_t len)
{
	msg_send(id, type, NULL, len, IPC_NOWAIT);
}

static void nobody_receiver(void *arg)
{
	int id = *(int *)arg;
	RCV(id, 100, 0, 0);
}

int main(void)
{
	msg_setup();
	alarm(60);
	int id;
	pid_t a, b, c, pid;
	struct msqid_ds d;

	CASE("wait_handoff");
	id = SHOW(msgget(IPC_PRIVATE, 0600));
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	SND(id, 5, "for A", 0);
	printf(" handed over: never counted in the queue, lrpid is A's:\n");
	msq_stat_show(id);
	msg_reap(a);
	sem_unlabel_all();

	CASE("wait_receiver_order");
	a = BLOCKED(RECEIVER("A", id, 100, 1, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 2, 0));
	c = BLOCKED(RECEIVER("C", id, 100, 0, 0));
	SND(id, 2, "two", 0);
	msg_reap(b);
	SND(id, 3, "three", 0);
	msg_reap(c);
	SND(id, 4, "four", 0);
	msq_count(id);
	SND(id, 1, "one", 0);
	msg_reap(a);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_same_type_fifo");
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 0, 0));
	SND(id, 1, "first", 0);
	SND(id, 1, "second", 0);
	msg_reap_any(2);
	sem_unlabel_all();

	CASE("wait_negative_and_except");
	a = BLOCKED(RECEIVER("A", id, 100, -2, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 3, MSG_EXCEPT));
	SND(id, 3, "three", 0);
	msq_count(id);
	SND(id, 2, "two", 0);
	msg_reap(a);
	SND(id, 4, "four", 0);
	msg_reap(b);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_queued_first");
	SND(id, 7, "already there", 0);
	RCV(id, 100, 7, 0);
	a = BLOCKED(RECEIVER("A", id, 100, 7, 0));
	SND(id, 8, "other type", 0);
	SND(id, 7, "seven", 0);
	msg_reap(a);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_e2big_handoff");
	a = BLOCKED(RECEIVER("A", id, 4, 0, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 0, 0));
	SND(id, 1, "ten bytes!", 0);
	msg_reap_any(2);
	msq_stat_show(id);
	a = BLOCKED(RECEIVER("A", id, 4, 0, 0));
	SND(id, 1, "ten bytes!", 0);
	msg_reap(a);
	msq_count(id);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_noerror_handoff");
	a = BLOCKED(RECEIVER("A", id, 4, 0, MSG_NOERROR));
	SND(id, 1, "truncated", 0);
	msg_reap(a);
	msq_count(id);
	sem_unlabel_all();

	CASE("wait_eidrm_receivers");
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 9, 0));
	rmid(id);
	msg_reap_any(2);
	sem_unlabel_all();

	CASE("wait_sender_bytes");
	id = SHOW(msgget(IPC_PRIVATE, 0600));
	fill(id, 1, 8192);
	fill(id, 2, 8192);
	a = BLOCKED(SENDER("S", id, 3, 100, 0));
	msq_count(id);
	RCV(id, 8192, 1, IPC_NOWAIT);
	msg_reap(a);
	msq_stat_show(id);
	RCV(id, 8192, 0, IPC_NOWAIT);
	RCV(id, 8192, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_sender_count");
	msgctl(id, IPC_STAT, &d);
	d.msg_qbytes = 2;
	SHOW(msgctl(id, IPC_SET, &d));
	SND(id, 1, "", 0);
	SND(id, 1, "", 0);
	a = BLOCKED(SENDER("S", id, 2, 0, 0));
	RCV(id, 0, 0, IPC_NOWAIT);
	msg_reap(a);
	msq_count(id);
	RCV(id, 0, 0, IPC_NOWAIT);
	RCV(id, 0, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_sender_fit_order");
	d.msg_qbytes = 10;
	SHOW(msgctl(id, IPC_SET, &d));
	fill(id, 1, 2);
	fill(id, 2, 8);
	a = BLOCKED(SENDER("S8", id, 3, 8, 0));
	b = BLOCKED(SENDER("S2", id, 4, 2, 0));
	RCV(id, 100, 1, IPC_NOWAIT);
	msg_reap(b);
	msq_count(id);
	RCV(id, 100, 2, IPC_NOWAIT);
	msg_reap(a);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_sender_handoff");
	fill(id, 1, 10);
	a = BLOCKED(SENDER("S", id, 5, 6, 0));
	b = BLOCKED(RECEIVER("R", id, 100, 5, 0));
	RCV(id, 100, 1, IPC_NOWAIT);
	msg_reap_any(2);
	msq_stat_show(id);
	sem_unlabel_all();

	CASE("wait_ipc_set_wakes_sender");
	fill(id, 1, 10);
	a = BLOCKED(SENDER("S", id, 2, 5, 0));
	d.msg_qbytes = 15;
	SHOW(msgctl(id, IPC_SET, &d));
	msg_reap(a);
	msq_count(id);
	sem_unlabel_all();

	CASE("wait_sender_eidrm");
	a = BLOCKED(SENDER("S", id, 2, 5, 0));
	b = BLOCKED(SENDER("T", id, 2, 1, 0));
	rmid(id);
	msg_reap_any(2);
	sem_unlabel_all();

	CASE("wait_eintr_receiver");
	id = SHOW(msgget(IPC_PRIVATE, 0600));
	a = BLOCKED(msg_receiver_h("A", id, 100, 0, 0, 0));
	SHOW(kill(a, SIGUSR1));
	msg_reap(a);
	a = BLOCKED(msg_receiver_h("A", id, 100, 0, 0, SA_RESTART));
	SHOW(kill(a, SIGUSR1));
	msg_reap(a);
	SND(id, 1, "after", 0);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_eintr_sender");
	msgctl(id, IPC_STAT, &d);
	d.msg_qbytes = 4;
	SHOW(msgctl(id, IPC_SET, &d));
	fill(id, 1, 4);
	a = BLOCKED(msg_sender_h("S", id, 2, 2, 0, SA_RESTART));
	SHOW(kill(a, SIGUSR1));
	msg_reap(a);
	msq_count(id);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));
	sem_unlabel_all();

	CASE("wait_signals_not_interrupting");
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	SHOW(kill(a, SIGCHLD));
	SHOW(kill(a, SIGURG));
	SHOW(kill(a, SIGSTOP));
	{
		int st;
		if (waitpid(a, &st, WUNTRACED) != a || !WIFSTOPPED(st))
			die("waitpid stopped");
		printf("  A stopped\n");
	}
	SHOW(kill(a, SIGCONT));
	io_wait_sleeping(a);
	SND(id, 1, "still waiting", 0);
	msg_reap(a);
	sem_unlabel_all();

	CASE("wait_ipc_set_receiver_eacces");
	SHOW(msgctl(id, IPC_STAT, &d));
	d.msg_perm.mode = 0666;
	SHOW(msgctl(id, IPC_SET, &d));
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		become(NOBODY);
		nobody_receiver(&id);
		_exit(0);
	}
	io_wait_sleeping(pid);
	d.msg_perm.mode = 0600;
	{
		/* Shown once the receiver it wakes has printed, in one order on both. */
		errno = 0;
		long r = msgctl(id, IPC_SET, &d);
		int e = errno;
		show_status("nobody's receiver", wait_child(pid));
		show_res("msgctl(id, IPC_SET, &d)", r, e);
	}
	msq_count(id);

	CASE("wait_ipc_set_receiver_stays");
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	SHOW(msgctl(id, IPC_SET, &d));
	io_wait_sleeping(a);
	SND(id, 1, "after IPC_SET", 0);
	msg_reap(a);
	sem_unlabel_all();

	CASE("wait_killed_receiver");
	a = BLOCKED(RECEIVER("A", id, 100, 0, 0));
	b = BLOCKED(RECEIVER("B", id, 100, 0, 0));
	SHOW(kill(a, SIGKILL));
	msg_reap(a);
	SND(id, 1, "for B", 0);
	msg_reap(b);
	msq_count(id);
	sem_unlabel_all();

	CASE("wait_killed_sender");
	d.msg_qbytes = 4;
	SHOW(msgctl(id, IPC_SET, &d));
	fill(id, 1, 4);
	a = BLOCKED(SENDER("S", id, 2, 3, 0));
	SHOW(kill(a, SIGKILL));
	msg_reap(a);
	msq_count(id);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	SND(id, 3, "room", IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	sem_unlabel_all();

	CASE("wait_many_receivers_by_type");
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));
	a = BLOCKED(RECEIVER("A", id, 100, 3, 0));
	b = BLOCKED(RECEIVER("B", id, 100, -2, 0));
	c = BLOCKED(RECEIVER("C", id, 100, 1, MSG_EXCEPT));
	SND(id, 1, "one", 0);
	SND(id, 3, "three", 0);
	SND(id, 2, "two", 0);
	SND(id, 5, "five", 0);
	msg_reap_any(3);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	msq_stat_show(id);
	sem_unlabel_all();
	rmid(id);
	return 0;
}
