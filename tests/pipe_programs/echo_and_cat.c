// Prints its arguments, one per line, then copies stdin to stdout: built static and set-uid by
// tests/tests/pipe_programs.rs, as a program that cannot load the shim.
#include <unistd.h>
#include <string.h>
int main(int c, char **v){ for (int i=1;i<c;i++){ write(1, v[i], strlen(v[i])); write(1,"\n",1);} char b[100]; ssize_t n; while ((n = read(0,b,100))>0) write(1,b,n); return 0;}
