#include "CAzureIoTShims.h"

#include <errno.h>
#include <sys/epoll.h>

int azi_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int azi_epoll_arm(int epfd, int fd, int interest, int in_set) {
    struct epoll_event event = {0};
    event.events = EPOLLONESHOT;
    if (interest & AZI_READABLE) event.events |= EPOLLIN;
    if (interest & AZI_WRITABLE) event.events |= EPOLLOUT;
    event.data.fd = fd;
    if (in_set && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event) == 0) return 0;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0) return 0;
    if (errno == EEXIST) return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event);
    return -1;
}

int azi_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int azi_epoll_wait(int epfd, int *fds, int *readiness, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        fds[i] = events[i].data.fd;
        int bits = 0;
        if (events[i].events & EPOLLIN) bits |= AZI_READABLE;
        if (events[i].events & EPOLLOUT) bits |= AZI_WRITABLE;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) bits |= AZI_FAILED;
        readiness[i] = bits;
    }
    return count;
}
