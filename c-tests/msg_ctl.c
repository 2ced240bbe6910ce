/* msgctl: IPC_STAT/IPC_SET/IPC_RMID, IPC_INFO, MSG_INFO (the namespace's
 * message and byte counts), MSG_STAT and MSG_STAT_ANY by index, qbytes and
 * the capability needed above msgmnb, and the error paths. */
#include "common.h"

static int g_id;

static void nobody_ctl(void *arg)
{
	(void)arg;
	struct msqid_ds d;
	memset(&d, 0, sizeof d);
	SHOW(msgctl(g_id, IPC_STAT, &d));
	SHOW(msgctl(g_id, MSG_STAT, &d));
	SHOW(msgctl(g_id, MSG_STAT_ANY, &d) == g_id);
	d.msg_perm.mode = 0666;
	d.msg_qbytes = 100;
	SHOW(msgctl(g_id, IPC_SET, &d));
	SHOW(msgctl(g_id, IPC_RMID, NULL));
}

static void owner_set(void *arg)
{
	(void)arg;
	int id = SHOW(msgget(0x4d430002, IPC_CREAT | 0600));
	struct msqid_ds d;
	msgctl(id, IPC_STAT, &d);
	d.msg_qbytes = 16385;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_qbytes = 100;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_qbytes = 0xffffffffUL;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
	d.msg_qbytes = 16384;
	d.msg_perm.uid = 0;
	SHOW(msgctl(id, IPC_SET, &d));
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
}

static void info(int cmd)
{
	struct msginfo mi;
	memset(&mi, 0x55, sizeof mi);
	errno = 0;
	int r = msgctl(0, cmd, (struct msqid_ds *)&mi);
	if (r < 0)
		printf("  %s = -1 %s\n", cmd == IPC_INFO ? "IPC_INFO" : "MSG_INFO", errname(errno));
	else
		printf("  %s = %d pool=%d map=%d max=%d mnb=%d mni=%d ssz=%d tql=%d seg=%u\n",
		       cmd == IPC_INFO ? "IPC_INFO" : "MSG_INFO", r, mi.msgpool, mi.msgmap,
		       mi.msgmax, mi.msgmnb, mi.msgmni, mi.msgssz, mi.msgtql, (unsigned)mi.msgseg);
}

int main(void)
{
	msg_setup();
	struct msqid_ds d;
	int id, id2;

	CASE("ctl_stat");
	g_id = id = SHOW(msgget(0x4d430001, IPC_CREAT | 0640));
	msq_stat_show(id);
	SND(id, 2, "abc", 0);
	msq_stat_show(id);

	CASE("ctl_set");
	next_second();
	msgctl(id, IPC_STAT, &d);
	time_t ctime = d.msg_ctime;
	d.msg_perm.uid = 1234;
	d.msg_perm.gid = 5678;
	d.msg_perm.mode = 0177604;
	d.msg_perm.cuid = 99;
	d.msg_qbytes = 1000;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
	msgctl(id, IPC_STAT, &d);
	printf("  ctime moved: %s\n", d.msg_ctime > ctime ? "yes" : "no");
	d.msg_perm.uid = (uid_t)-1;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_perm.uid = 0;
	d.msg_perm.gid = (gid_t)-1;
	SHOW(msgctl(id, IPC_SET, &d));
	d.msg_perm.gid = 0;
	d.msg_perm.mode = 0600;
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);

	CASE("ctl_set_qbytes_root");
	d.msg_qbytes = 100000;
	SHOW(msgctl(id, IPC_SET, &d));
	msg_send(id, 1, NULL, 8192, IPC_NOWAIT);
	msg_send(id, 1, NULL, 8192, IPC_NOWAIT);
	msg_send(id, 1, NULL, 8192, IPC_NOWAIT);
	msq_count(id);
	d.msg_qbytes = 1UL << 32;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
	SND(id, 1, "", IPC_NOWAIT);
	d.msg_qbytes = (1UL << 32) + 50000;
	SHOW(msgctl(id, IPC_SET, &d));
	msq_stat_show(id);
	d.msg_qbytes = 16384;
	SHOW(msgctl(id, IPC_SET, &d));
	RCV(id, 8192, 1, IPC_NOWAIT);
	RCV(id, 8192, 1, IPC_NOWAIT);
	RCV(id, 8192, 1, IPC_NOWAIT);

	CASE("ctl_set_qbytes_owner");
	in_child(NOBODY, owner_set, NULL);

	CASE("ctl_nobody");
	in_child(NOBODY, nobody_ctl, NULL);
	msq_stat_show(id);

	CASE("ctl_bad_args");
	SHOW(msgctl(-1, IPC_STAT, &d));
	SHOW(msgctl(id, -1, &d));
	SHOW(msgctl(id, 99, &d));
	SHOW(msgctl(id, IPC_STAT | 0x100, &d));
	SHOW(msgctl(id + 1, IPC_STAT, &d));
	SHOW(msgctl(id + 32768, IPC_STAT, &d));
	SHOW(msgctl(id + 1, IPC_RMID, NULL));
	SHOW(msgctl(-1, IPC_INFO, (struct msqid_ds *)&d));

	CASE("ctl_efault");
	SHOW(msgctl(id, IPC_STAT, NULL));
	SHOW(msgctl(id, IPC_SET, NULL));
	SHOW(msgctl(id + 1, IPC_SET, NULL));
	SHOW(msgctl(0, IPC_INFO, NULL));
	SHOW(msgctl(0, MSG_INFO, NULL));
	SHOW(msgctl(0, MSG_STAT, NULL));
	SHOW(msgctl(5, MSG_STAT, NULL));

	CASE("ctl_info");
	info(IPC_INFO);
	info(MSG_INFO);
	id2 = SHOW(msgget(IPC_PRIVATE, 0600));
	SND(id2, 1, "12345", 0);
	SND(id2, 1, "678", 0);
	SND(id2, 1, "", 0);
	info(MSG_INFO);
	RCV(id2, 100, 0, IPC_NOWAIT);
	info(MSG_INFO);
	info(IPC_INFO);

	CASE("ctl_msg_stat");
	for (int i = 0; i < 4; i++) {
		errno = 0;
		int r = msgctl(i, MSG_STAT, &d);
		if (r < 0)
			printf("  MSG_STAT %d = -1 %s\n", i, errname(errno));
		else
			printf("  MSG_STAT %d = %d qnum=%lu\n", i, r, (unsigned long)d.msg_qnum);
	}
	SHOW(msgctl(32768 + 1, MSG_STAT, &d));
	SHOW(msgctl(1, MSG_STAT_ANY, &d));

	CASE("ctl_rmid");
	SHOW(msgctl(id2, IPC_RMID, NULL));
	info(MSG_INFO);
	SHOW(msgctl(id2, IPC_RMID, NULL));
	SHOW(msgctl(id2, IPC_STAT, &d));
	SND(id2, 1, "gone", IPC_NOWAIT);
	RCV(id2, 100, 0, IPC_NOWAIT);
	SHOW(msgctl(1, MSG_STAT, &d));
	id2 = SHOW(msgget(IPC_PRIVATE, 0600));
	msq_stat_show(id2);
	info(IPC_INFO);
	SHOW(msgctl(id, IPC_RMID, NULL));
	SHOW(msgget(0x4d430001, 0));
	return 0;
}
