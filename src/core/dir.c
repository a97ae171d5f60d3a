/* dir: see dir.h. */
#include "core/dir.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

DIR *dir_open(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return d;
}
