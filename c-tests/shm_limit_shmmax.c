/* shmget against a lowered kernel.shmmax, set by the runner before exec. */
// sysctl: shmmax=8192
#include "common.h"

int main(void)
{
	setup();
	int id;

	CASE("get_shmmax_lowered");
	SHOW(shmget(0x10010002, 8193, IPC_CREAT | 0600));
	SHOW(shmget(IPC_PRIVATE, 3 * 4096, 0600));
	id = SHOW(shmget(0x10010002, 8192, IPC_CREAT | 0600));
	stat_show(id);
	SHOW(shmget(0x10010002, 8192, 0) == id);
	SHOW(shmget(0x10010002, 4097, 0) == id);
	SHOW(shmget(0x10010002, 8193, 0));
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
