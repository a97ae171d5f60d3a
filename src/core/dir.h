/*
 * dir: opendir() through open(O_DIRECTORY | O_CLOEXEC) + fdopendir(). The descriptor is
 * close-on-exec, and it is created by an intercepted open(), so ThreadSanitizer sees the
 * descriptor's new life: plain opendir() is not, and a directory descriptor that reuses the
 * number of a socket just closed by the loop thread was reported as a race on closedir().
 * Any thread.
 */
#ifndef MYLOWARE_CORE_DIR_H
#define MYLOWARE_CORE_DIR_H

#include <dirent.h>

/* As opendir(3): NULL with errno set on failure; close with closedir(). */
DIR *dir_open(const char *path);

#endif
