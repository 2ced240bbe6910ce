/* The namespace limits msgmax, msgmnb and msgmni, read from /proc/sys/kernel:
 * sizes, the default queue size, the queue count, IPC_INFO and IPC_SET. */
// sysctl: msgmax=100 msgmnb=250 msgmni=3
#include "common.h"

static int g_id;

static void raise_as_owner(void *arg)
{
	(void)arg;
	int id = msgget(IPC_PRIVATE, 0600);
	struct msqid_ds d;
	if (id < 0 || msgctl(id, IPC_STAT, &d))
		die("msgget");
	d.msg_qbytes = 251;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_qbytes = 250;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_qbytes = 10;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
	SHOW(msgctl(id, IPC_RMID, NULL));
}

int main(void)
{
	msg_setup();
	struct msginfo mi;

	CASE("limits_info");
	SHOW(msgctl(0, IPC_INFO, (struct msqid_ds *)&mi));
	printf("  msgmax=%d msgmnb=%d msgmni=%d msgpool=%d msgmap=%d msgtql=%d msgssz=%d msgseg=%u\n",
	       mi.msgmax, mi.msgmnb, mi.msgmni, mi.msgpool, mi.msgmap, mi.msgtql, mi.msgssz,
	       (unsigned)mi.msgseg);

	CASE("limits_msgmax");
	g_id = SHOW(msgget(IPC_PRIVATE, 0600));
	msq_stat_show(g_id);
	msg_send(g_id, 1, NULL, 100, IPC_NOWAIT);
	msg_send(g_id, 1, NULL, 101, IPC_NOWAIT);
	msg_send(g_id, 1, NULL, 100, IPC_NOWAIT);
	msq_count(g_id);

	CASE("limits_msgmnb");
	msg_send(g_id, 1, NULL, 50, IPC_NOWAIT);
	msg_send(g_id, 1, NULL, 1, IPC_NOWAIT);
	msq_count(g_id);
	RCV(g_id, 200, 0, IPC_NOWAIT);
	msg_send(g_id, 1, NULL, 51, IPC_NOWAIT);
	msq_count(g_id);

	CASE("limits_qbytes_cap");
	in_child(NOBODY, raise_as_owner, NULL);

	CASE("limits_msgmni");
	SHOW(msgget(IPC_PRIVATE, 0600) >= 0);
	SHOW(msgget(IPC_PRIVATE, 0600) >= 0);
	SHOW(msgget(IPC_PRIVATE, 0600));
	SHOW(msgget(0x4d4e0001, IPC_CREAT | 0600));
	SHOW(msgctl(0, MSG_INFO, (struct msqid_ds *)&mi));
	printf("  msgpool=%d msgmap=%d msgtql=%d\n", mi.msgpool, mi.msgmap, mi.msgtql);
	SHOW(msgctl(g_id, IPC_RMID, NULL));
	SHOW(msgget(0x4d4e0001, IPC_CREAT | 0600) >= 0);
	return 0;
}
