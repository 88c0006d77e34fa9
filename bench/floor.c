/* The floor of bench/bench.py: floor ROOT sysext|confext
 *
 * Merges one class's extensions below ROOT with only the kernel work any implementation must
 * do, on the kernels extmerge targets (6.12: overlay layers must be mounts of the caller's
 * namespace, so they are mounted in a private one):
 *   - list the class's search directories (directories and *.raw images, by name);
 *   - per image: open it, tell squashfs from erofs by the superblock magic, mount erofs from
 *     the file (kernel >= 6.12, as extmerge does) and squashfs (or erofs on an older kernel)
 *     through LOOP_CTL_GET_FREE + one LOOP_CONFIGURE (read-only, autoclear, direct I/O, as
 *     extmerge), fsopen/fsconfig/fsmount, and move_mount into a private tmpfs;
 *   - per hierarchy an extension populates (sysext: usr, opt; confext: etc): one overlay
 *     (fsopen("overlay"), lowerdir+ per layer, top first, the host hierarchy last; for the
 *     confext the mutable /etc is its own upper dir, as the bench's base has it);
 *   - back in the caller's namespace (setns drops the private one), move_mount of each overlay.
 * No extension-release parsing, no identities, no metadata, no state, no checks: a time no
 * implementation can beat. Built (static) by bench/run.sh into target/bench/floor; prints
 * nothing on success and exits 0; any failure prints the step and exits 1. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_EXT 512
#define WS "/run/floor-ws"

static void die(const char *what, const char *arg) {
    fprintf(stderr, "floor: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    exit(1);
}

static int fsopen_(const char *fs) { return (int)syscall(SYS_fsopen, fs, FSOPEN_CLOEXEC); }
static int fsconfig_(int fd, unsigned cmd, const char *k, const void *v, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, k, v, aux);
}
static int fsmount_(int fd, unsigned attrs) {
    return (int)syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, attrs);
}
static int move_mount_(int from, const char *to_path, int to_dfd, unsigned flags) {
    return (int)syscall(SYS_move_mount, from, "", to_dfd, to_path,
                        MOVE_MOUNT_F_EMPTY_PATH | flags);
}
static int mount_(const char *src, const char *dst, const char *fs, unsigned long fl,
                  const char *data) {
    return (int)syscall(SYS_mount, src, dst, fs, fl, data);
}

struct ext {
    char name[256];
    char lower[4400]; /* where its tree is (a directory, or the image's mount) */
};

static int by_name(const void *a, const void *b) {
    return strcmp(((const struct ext *)a)->name, ((const struct ext *)b)->name);
}

/* List DIR below ROOT: directories and regular *.raw files (first wins per name). */
static int scan(const char *root, const char *dir, struct ext *e, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", root, dir);
    DIR *d = opendir(path);
    if (!d) return n;
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_EXT) {
        if (de->d_name[0] == '.') continue;
        size_t len = strlen(de->d_name);
        int raw = len > 4 && strcmp(de->d_name + len - 4, ".raw") == 0;
        if (de->d_type != DT_DIR && !(de->d_type == DT_REG && raw)) continue;
        struct ext *x = &e[n];
        snprintf(x->name, sizeof x->name, "%.*s", (int)(raw ? len - 4 : len), de->d_name);
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= strcmp(e[i].name, x->name) == 0;
        if (dup) continue;
        snprintf(x->lower, sizeof x->lower, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* A loop device (read-only, autoclear, direct I/O) for the open image IMG; its path in DEV. */
static int attach_loop(int img, const char *what, char *dev, size_t devlen) {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) die("open", "/dev/loop-control");
    for (int tries = 0; tries < 100; tries++) {
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (nr < 0) die("LOOP_CTL_GET_FREE", NULL);
        snprintf(dev, devlen, "/dev/loop%d", nr);
        int loop = open(dev, O_RDONLY | O_CLOEXEC);
        if (loop < 0) die("open", dev);
        struct loop_config c;
        memset(&c, 0, sizeof c);
        c.fd = (uint32_t)img;
        c.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        if (ioctl(loop, LOOP_CONFIGURE, &c) == 0) {
            close(ctl);
            return loop;
        }
        if (errno != EBUSY) die("LOOP_CONFIGURE", dev);
        close(loop); /* taken meanwhile: ask again */
    }
    die("no free loop device for", what);
    return -1;
}

/* fsopen/fsconfig/fsmount of FS from SOURCE; -1 (errno set) when the file system refuses it. */
static int mount_fs(const char *fs, const char *source, unsigned attrs) {
    int fsfd = fsopen_(fs);
    if (fsfd < 0) die("fsopen", fs);
    if (fsconfig_(fsfd, FSCONFIG_SET_STRING, "source", source, 0) != 0) die("fsconfig source", source);
    if (fsconfig_(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) die("fsconfig ro", source);
    int mfd = -1;
    if (fsconfig_(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
        mfd = fsmount_(fsfd, MOUNT_ATTR_RDONLY | attrs);
        if (mfd < 0) die("fsmount", source);
    }
    close(fsfd);
    return mfd;
}

/* Mount the image at x->lower (erofs straight from the file where the kernel can, >= 6.12, as
 * extmerge does; else through a loop device) and move the mount to WS/i. */
static void mount_image(struct ext *x, int i, unsigned attrs) {
    int img = open(x->lower, O_RDONLY | O_CLOEXEC);
    if (img < 0) die("open", x->lower);
    unsigned char sb[1028];
    if (pread(img, sb, sizeof sb, 0) != (ssize_t)sizeof sb) die("reading the superblock of", x->lower);
    uint32_t erofs;
    memcpy(&erofs, sb + 1024, 4);
    const char *fs = memcmp(sb, "hsqs", 4) == 0 ? "squashfs" : erofs == 0xE0F5E1E2 ? "erofs" : NULL;
    if (!fs) { errno = EINVAL; die("unknown file system in", x->lower); }
    int mfd = strcmp(fs, "erofs") == 0 ? mount_fs(fs, x->lower, attrs) : -1;
    if (mfd < 0) {
        char dev[64];
        int loop = attach_loop(img, x->lower, dev, sizeof dev);
        mfd = mount_fs(fs, dev, attrs);
        if (mfd < 0) die("mounting", x->lower);
        close(loop); /* the mount holds the device; autoclear detaches it after the last user */
    }
    close(img);
    snprintf(x->lower, sizeof x->lower, WS "/%d", i);
    if (mkdir(x->lower, 0700) != 0) die("mkdir", x->lower);
    if (move_mount_(mfd, x->lower, AT_FDCWD, 0) != 0) die("move_mount", x->lower);
    close(mfd);
}

/* One overlay for hierarchy H (top layer first), detached; -1 when no extension has H. */
static int overlay(const char *root, const char *h, struct ext *e, int n, int self_upper,
                   unsigned attrs) {
    char p[4200];
    int fsfd = -1, layers = 0;
    for (int i = n - 1; i >= 0; i--) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", e[i].lower, h);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (fsfd < 0 && (fsfd = fsopen_("overlay")) < 0) die("fsopen", "overlay");
        if (fsconfig_(fsfd, FSCONFIG_SET_STRING, "lowerdir+", p, 0) != 0) die("lowerdir+", p);
        layers++;
    }
    if (!layers) return -1;
    snprintf(p, sizeof p, "%s/%s", root, h);
    if (self_upper) {
        char w[4200];
        snprintf(w, sizeof w, "%s/.floor-%s-work", root, h);
        if (mkdir(w, 0700) != 0 && errno != EEXIST) die("mkdir", w);
        if (fsconfig_(fsfd, FSCONFIG_SET_STRING, "upperdir", p, 0) != 0) die("upperdir", p);
        if (fsconfig_(fsfd, FSCONFIG_SET_STRING, "workdir", w, 0) != 0) die("workdir", w);
    } else if (fsconfig_(fsfd, FSCONFIG_SET_STRING, "lowerdir+", p, 0) != 0) {
        die("lowerdir+", p);
    }
    fsconfig_(fsfd, FSCONFIG_SET_STRING, "source", "floor", 0);
    if (fsconfig_(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) die("creating the overlay for", h);
    int mfd = fsmount_(fsfd, attrs | (self_upper ? 0 : MOUNT_ATTR_RDONLY));
    if (mfd < 0) die("fsmount overlay", h);
    close(fsfd);
    return mfd;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "sysext") && strcmp(argv[2], "confext"))) {
        fprintf(stderr, "usage: floor ROOT sysext|confext\n");
        return 2;
    }
    const char *root = argv[1];
    int confext = strcmp(argv[2], "confext") == 0;
    static const char *sysdirs[] = {"/etc/extensions", "/run/extensions", "/var/lib/extensions", NULL};
    static const char *confdirs[] = {"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts",
                                     "/usr/lib/confexts", NULL};
    static const char *syshier[] = {"usr", "opt", NULL}, *confhier[] = {"etc", NULL};
    const char **dirs = confext ? confdirs : sysdirs, **hier = confext ? confhier : syshier;
    unsigned attrs = MOUNT_ATTR_NODEV | (confext ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC : 0);

    static struct ext e[MAX_EXT];
    int n = 0;
    for (int i = 0; dirs[i]; i++) n = scan(root, dirs[i], e, n);
    qsort(e, (size_t)n, sizeof e[0], by_name);
    int targets[4], caller = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (caller < 0) die("open", "/proc/self/ns/mnt");
    for (int i = 0; hier[i]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", root, hier[i]);
        mkdir(p, 0755); /* a missing hierarchy becomes a mount point, as extmerge makes it */
        targets[i] = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (targets[i] < 0) die("open", p);
    }

    if (unshare(CLONE_NEWNS) != 0) die("unshare", NULL);
    if (mount_(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("making / private", NULL);
    if (mkdir(WS, 0700) != 0 && errno != EEXIST) die("mkdir", WS);
    if (mount_("tmpfs", WS, "tmpfs", 0, "mode=0700") != 0) die("mount tmpfs", WS);
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(e[i].lower, &st) != 0) die("stat", e[i].lower);
        if (S_ISREG(st.st_mode)) mount_image(&e[i], i, attrs);
    }
    int ovl[4];
    for (int i = 0; hier[i]; i++) ovl[i] = overlay(root, hier[i], e, n, confext, attrs);

    /* Back in the caller's namespace: the private one (and its image mounts, which the
     * overlays hold privately cloned) goes now. */
    if (setns(caller, CLONE_NEWNS) != 0) die("setns", NULL);
    for (int i = 0; hier[i]; i++) {
        if (ovl[i] >= 0 && move_mount_(ovl[i], "", targets[i], MOVE_MOUNT_T_EMPTY_PATH) != 0)
            die("attaching the overlay on", hier[i]);
    }
    return 0;
}
