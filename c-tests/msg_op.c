/* msgsnd and msgrcv that do not block: types (0, > 0, < 0, MSG_EXCEPT), sizes
 * (zero, chunk edges, MSGMAX), E2BIG and MSG_NOERROR, MSG_COPY and its rules,
 * full queues by bytes and by count, every EINVAL/EFAULT/EACCES path, and the
 * raw system calls. */
#include "common.h"

static int g_id;

static void nobody_ops(void *arg)
{
	int id = *(int *)arg;
	SND(id, 1, "from nobody", IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT | MSG_COPY);
}

static void child_send(void *arg)
{
	(void)arg;
	SND(g_id, 9, "child", IPC_NOWAIT);
}

static void child_recv(void *arg)
{
	(void)arg;
	RCV(g_id, 100, 9, IPC_NOWAIT);
}

/* Sends sizes chosen around the chunk edges and checks each comes back whole. */
static void roundtrip(int id, size_t len)
{
	static struct msgb in, out;
	in.mtype = 7;
	for (size_t i = 0; i < len; i++)
		in.mtext[i] = (char)(i * 131 + len);
	if (msgsnd(id, &in, len, IPC_NOWAIT))
		printf("  %zu: msgsnd = -1 %s\n", len, errname(errno));
	memset(&out, 0, sizeof out);
	long r = msgrcv(id, &out, sizeof out.mtext, 7, IPC_NOWAIT);
	printf("  %zu: msgrcv = %ld, %s\n", len, r,
	       r == (long)len && !memcmp(in.mtext, out.mtext, len) ? "same text" : "DIFFERENT");
}

int main(void)
{
	msg_setup();
	int id;
	struct msqid_ds d;
	static struct msgb b;

	CASE("op_basic");
	g_id = id = SHOW(msgget(IPC_PRIVATE, 0600));
	SND(id, 1, "hello", IPC_NOWAIT);
	msq_stat_show(id);
	RCV(id, 100, 0, IPC_NOWAIT);
	msq_stat_show(id);

	CASE("op_fifo_any");
	SND(id, 3, "three", 0);
	SND(id, 1, "one", 0);
	SND(id, 2, "two", 0);
	SND(id, 1, "one again", 0);
	msq_count(id);
	for (int i = 0; i < 5; i++)
		RCV(id, 100, 0, IPC_NOWAIT);

	CASE("op_type_equal");
	SND(id, 3, "three", 0);
	SND(id, 2, "two-a", 0);
	SND(id, 1, "one", 0);
	SND(id, 2, "two-b", 0);
	RCV(id, 100, 2, IPC_NOWAIT);
	RCV(id, 100, 2, IPC_NOWAIT);
	RCV(id, 100, 2, IPC_NOWAIT);
	RCV(id, 100, 4, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);

	CASE("op_type_negative");
	SND(id, 5, "five", 0);
	SND(id, 3, "three-a", 0);
	SND(id, 4, "four", 0);
	SND(id, 3, "three-b", 0);
	SND(id, 2, "two", 0);
	SND(id, 1, "one", 0);
	RCV(id, 100, -4, IPC_NOWAIT);
	RCV(id, 100, -4, IPC_NOWAIT);
	RCV(id, 100, -2, IPC_NOWAIT);
	RCV(id, 100, -3, IPC_NOWAIT);
	RCV(id, 100, -3, IPC_NOWAIT);
	RCV(id, 100, -4, IPC_NOWAIT);
	RCV(id, 100, -4, IPC_NOWAIT);
	RCV(id, 100, -5, IPC_NOWAIT);

	CASE("op_type_extremes");
	SND(id, LONG_MAX, "max", 0);
	SND(id, 1, "one", 0);
	RCV(id, 100, LONG_MIN, IPC_NOWAIT);
	RCV(id, 100, LONG_MIN, IPC_NOWAIT);
	SND(id, LONG_MAX, "max", 0);
	RCV(id, 100, LONG_MAX, IPC_NOWAIT);
	RCV(id, 100, -1, IPC_NOWAIT);

	CASE("op_except");
	SND(id, 1, "one-a", 0);
	SND(id, 1, "one-b", 0);
	SND(id, 2, "two", 0);
	SND(id, 3, "three", 0);
	RCV(id, 100, 1, IPC_NOWAIT | MSG_EXCEPT);
	RCV(id, 100, 1, IPC_NOWAIT | MSG_EXCEPT);
	RCV(id, 100, 1, IPC_NOWAIT | MSG_EXCEPT);
	RCV(id, 100, 0, IPC_NOWAIT | MSG_EXCEPT);
	SND(id, 3, "three", 0);
	SND(id, 2, "two", 0);
	RCV(id, 100, -2, IPC_NOWAIT | MSG_EXCEPT);
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 0, IPC_NOWAIT);

	CASE("op_nowait_empty");
	RCV(id, 100, 0, IPC_NOWAIT);
	RCV(id, 100, 5, IPC_NOWAIT);
	RCV(id, 100, -5, IPC_NOWAIT);
	msq_stat_show(id);

	CASE("op_e2big_noerror");
	SND(id, 1, "0123456789", 0);
	RCV(id, 5, 0, IPC_NOWAIT);
	msq_count(id);
	RCV(id, 5, 0, IPC_NOWAIT | MSG_NOERROR);
	msq_count(id);
	SND(id, 1, "0123456789", 0);
	RCV(id, 0, 0, IPC_NOWAIT | MSG_NOERROR);
	RCV(id, 10, 0, IPC_NOWAIT);

	CASE("op_zero_length");
	SND(id, 4, "", 0);
	SND(id, 5, "", IPC_NOWAIT);
	msq_count(id);
	RCV(id, 0, 0, IPC_NOWAIT);
	RCV(id, 100, 5, IPC_NOWAIT);

	CASE("op_sizes");
	size_t sizes[] = { 1, 63, 64, 1023, 1024, 1025, 2048, 3000, 4096, 8191, 8192 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		roundtrip(id, sizes[i]);
	msg_send(id, 1, NULL, 8193, IPC_NOWAIT);
	msq_count(id);

	CASE("op_interleaved_sizes");
	for (int i = 0; i < 6; i++)
		msg_send(id, 1 + i % 2, NULL, 500 * i + 3, 0);
	msq_count(id);
	for (int i = 0; i < 6; i++)
		RCV(id, 8192, i < 3 ? 2 : 1, IPC_NOWAIT);
	msq_count(id);

	CASE("op_snd_einval");
	SND(id, 0, "zero", IPC_NOWAIT);
	SND(id, -1, "negative", IPC_NOWAIT);
	SND(id, LONG_MIN, "min", IPC_NOWAIT);
	SND(-1, 1, "bad id", IPC_NOWAIT);
	SND(id + 1, 1, "no such id", IPC_NOWAIT);
	SND(id + 32768, 1, "stale seq", IPC_NOWAIT);
	b.mtype = 1;
	SHOW(msgsnd(id, &b, (size_t)-1, IPC_NOWAIT));
	SHOW(msgsnd(id, &b, (size_t)1 << 40, IPC_NOWAIT));
	SHOW(msgsnd(-1, &b, (size_t)-1, IPC_NOWAIT));
	msq_count(id);

	CASE("op_snd_efault");
	SHOW(msgsnd(id, NULL, 1, IPC_NOWAIT));
	SHOW(msgsnd(-1, NULL, 1, IPC_NOWAIT));
	SHOW(msgsnd(id, NULL, (size_t)-1, IPC_NOWAIT));
	{
		struct msgb *edge = (struct msgb *)io_edge(sizeof(long) + 10);
		edge->mtype = 1;
		SHOW(msgsnd(id, edge, 10, IPC_NOWAIT));
		SHOW(msgsnd(id, edge, 11, IPC_NOWAIT));
		SHOW(msgsnd(id + 1, edge, 11, IPC_NOWAIT));
		SHOW(msgsnd(id, edge, 9000, IPC_NOWAIT));
		edge->mtype = 0;
		SHOW(msgsnd(id, edge, 11, IPC_NOWAIT));
	}
	msq_count(id);
	RCV(id, 100, 0, IPC_NOWAIT);

	CASE("op_rcv_einval");
	SHOW(msgrcv(-1, &b, 10, 0, IPC_NOWAIT));
	SHOW(msgrcv(id, &b, (size_t)-1, 0, IPC_NOWAIT));
	SHOW(msgrcv(id + 1, &b, 10, 0, IPC_NOWAIT));
	SHOW(msgrcv(id, &b, 10, 0, IPC_NOWAIT | 0x100000));

	CASE("op_rcv_efault");
	SND(id, 1, "lost", 0);
	SND(id, 1, "kept", 0);
	SHOW(msgrcv(id, NULL, 10, 0, IPC_NOWAIT));
	msq_count(id);
	{
		struct msgb *edge = (struct msgb *)io_edge(sizeof(long) + 2);
		SHOW(msgrcv(id, edge, 10, 0, IPC_NOWAIT));
		printf("  mtype written: %ld\n", edge->mtype);
		SND(id, 2, "ab", 0);
		SHOW(msgrcv(id, edge, 10, 0, IPC_NOWAIT));
		printf("  got %ld \"%.2s\"\n", edge->mtype, edge->mtext);
	}
	msq_count(id);
	SHOW(msgrcv(id, NULL, 10, 0, IPC_NOWAIT));

	CASE("op_msg_copy");
	SND(id, 3, "first", 0);
	SND(id, 1, "second", 0);
	SND(id, 2, "third", 0);
	msgctl(id, IPC_STAT, &d);
	time_t rtime = d.msg_rtime;
	RCV(id, 100, 0, IPC_NOWAIT | MSG_COPY);
	RCV(id, 100, 2, IPC_NOWAIT | MSG_COPY);
	RCV(id, 100, 1, IPC_NOWAIT | MSG_COPY | MSG_NOERROR);
	RCV(id, 100, 3, IPC_NOWAIT | MSG_COPY);
	RCV(id, 100, -1, IPC_NOWAIT | MSG_COPY);
	msq_count(id);
	msgctl(id, IPC_STAT, &d);
	printf("  rtime unchanged: %s\n", d.msg_rtime == rtime ? "yes" : "no");

	CASE("op_msg_copy_rules");
	RCV(id, 100, 0, MSG_COPY);
	RCV(id, 100, 0, IPC_NOWAIT | MSG_COPY | MSG_EXCEPT);
	RCV(id, 3, 0, IPC_NOWAIT | MSG_COPY);
	RCV(id, 3, 0, IPC_NOWAIT | MSG_COPY | MSG_NOERROR);
	RCV(id, 5, 0, IPC_NOWAIT | MSG_COPY);
	SHOW(msgrcv(id, NULL, 10, 0, IPC_NOWAIT | MSG_COPY));
	SHOW(msgrcv(id, NULL, 0, 0, IPC_NOWAIT | MSG_COPY));
	SHOW(msgrcv(id, io_edge(12), 100, 0, IPC_NOWAIT | MSG_COPY));
	SHOW(msgrcv(-1, NULL, 10, 0, MSG_COPY));
	SHOW(msgrcv(id + 1, &b, 100, 0, IPC_NOWAIT | MSG_COPY));
	msq_count(id);
	for (int i = 0; i < 3; i++)
		RCV(id, 100, 0, IPC_NOWAIT);

	CASE("op_full_bytes");
	msg_send(id, 1, NULL, 8192, IPC_NOWAIT);
	msg_send(id, 1, NULL, 8000, IPC_NOWAIT);
	msg_send(id, 1, NULL, 193, IPC_NOWAIT);
	msg_send(id, 1, NULL, 192, IPC_NOWAIT);
	msg_send(id, 1, NULL, 0, IPC_NOWAIT);
	msq_count(id);
	RCV(id, 8192, 0, IPC_NOWAIT);
	msg_send(id, 1, NULL, 193, IPC_NOWAIT);
	msq_count(id);
	while (msgrcv(id, &b, 8192, 0, IPC_NOWAIT) >= 0)
		;

	CASE("op_full_count");
	msgctl(id, IPC_STAT, &d);
	d.msg_qbytes = 3;
	SHOW(msgctl(id, IPC_SET, &d));
	SND(id, 1, "", IPC_NOWAIT);
	SND(id, 1, "", IPC_NOWAIT);
	SND(id, 1, "", IPC_NOWAIT);
	msq_count(id);
	RCV(id, 0, 0, IPC_NOWAIT);
	SND(id, 1, "a", IPC_NOWAIT);
	SND(id, 1, "b", IPC_NOWAIT);
	msq_count(id);
	RCV(id, 0, 0, IPC_NOWAIT);
	RCV(id, 0, 0, IPC_NOWAIT);
	SND(id, 1, "ab", IPC_NOWAIT);
	SND(id, 1, "c", IPC_NOWAIT);
	msq_count(id);
	while (msgrcv(id, &b, 8192, 0, IPC_NOWAIT) >= 0)
		;
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));

	CASE("op_perms");
	int q600 = SHOW(msgget(IPC_PRIVATE, 0600));
	int q622 = SHOW(msgget(IPC_PRIVATE, 0622));
	int q644 = SHOW(msgget(IPC_PRIVATE, 0644));
	SND(q644, 1, "readable", 0);
	SND(q622, 1, "queued", 0);
	in_child(NOBODY, nobody_ops, &q600);
	in_child(NOBODY, nobody_ops, &q622);
	in_child(NOBODY, nobody_ops, &q644);
	msq_count(q622);
	msq_count(q644);

	CASE("op_pids");
	in_child(0, child_send, NULL);
	msq_stat_show(id);
	in_child(0, child_recv, NULL);
	msq_stat_show(id);

	CASE("op_raw_syscalls");
	int rid = SHOW(syscall(SYS_msgget, IPC_PRIVATE, 0600));
	b.mtype = 6;
	memcpy(b.mtext, "raw", 3);
	SHOW(syscall(SYS_msgsnd, rid, &b, 3, IPC_NOWAIT));
	memset(&b, 0, sizeof b);
	SHOW(syscall(SYS_msgrcv, rid, &b, 100, 0, IPC_NOWAIT));
	printf("  got %ld \"%.3s\"\n", b.mtype, b.mtext);
	SHOW(syscall(SYS_msgrcv, rid, &b, 100, 0, IPC_NOWAIT));
	SHOW(syscall(SYS_msgctl, rid, IPC_STAT, &d));
	SHOW(syscall(SYS_msgctl, rid, IPC_RMID, NULL));
	SHOW(syscall(SYS_msgsnd, rid, &b, 3, IPC_NOWAIT));
	return 0;
}
