/*
 * A fake libnvidia-ml.so.1: the subset of the NVML C ABI that the NVML GPU driver uses,
 * backed by a state file that the twin writes (see drivers/nvml/fake_library.py).
 *
 * Why: the real driver (drivers/nvml/driver.py) runs the unmodified nvidia-ml-py against
 * this library on machines without a GPU, so its marshalling, error mapping and read-back
 * logic are exercised end to end without mocks.
 *
 * Build: cc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -o libnvidia-ml.so.1 fake_nvml.c
 *
 * State file (path in the environment variable HCP_FAKE_NVML_STATE, read at nvmlInit):
 * a fake_header followed by device_count fake_record structs, native byte order. It is
 * mapped MAP_SHARED, so writes by the twin (demand, utilization, temperature, injected
 * errors) are seen by the next NVML call, and nvmlDeviceSetPowerManagementLimit writes the
 * record that the twin reads. Power usage reads min(demand_mw, limit_mw).
 *
 * Injected errors: a non-zero record.error_code makes every call on that device return it
 * (NVML_ERROR_GPU_IS_LOST = 15: a GPU fallen off the bus); record.set_error_code only the
 * set call (NVML_ERROR_NO_PERMISSION = 4: not root); header.init_error_code makes nvmlInit
 * fail. init/shutdown are reference counted like the real library: the state is mapped on
 * the first init and unmapped on the last shutdown; the path is read on the first init.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

enum { NVML_TEMPERATURE_GPU = 0 };
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };

#define STATE_ENV "HCP_FAKE_NVML_STATE"
#define STATE_MAGIC 0x4E504348u /* "HCPN" little endian */
#define LAYOUT_VERSION 1u
#define MAX_DEVICES 1024u
#define MEMORY_V2_VERSION 0x02000028u

typedef struct {
    uint32_t magic;
    uint32_t layout_version;
    uint32_t record_size;
    uint32_t device_count;
    uint32_t init_error_code;
    uint32_t reserved;
    char driver_version[32];
    char nvml_version[32];
} fake_header; /* 88 bytes */

typedef struct {
    uint64_t memory_total_bytes;
    uint64_t memory_used_bytes;
    uint32_t min_limit_mw;
    uint32_t max_limit_mw;
    uint32_t default_limit_mw;
    uint32_t limit_mw;
    uint32_t demand_mw;
    uint32_t util_gpu_pct;
    uint32_t util_memory_pct;
    uint32_t temperature_c;
    uint32_t clock_graphics_mhz;
    uint32_t clock_sm_mhz;
    uint32_t clock_memory_mhz;
    uint32_t error_code;
    uint32_t set_error_code;
    uint32_t reserved;
    char name[96];
    char uuid[96];
    char serial[32];
} fake_record; /* 296 bytes */

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

/* A handle points at one of these slots; it stays valid (and checkable) after shutdown. */
typedef struct {
    unsigned int index;
} fake_device;
typedef fake_device *nvmlDevice_t;

static fake_device g_devices[MAX_DEVICES];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int g_refcount;
static void *g_map;
static size_t g_map_size;

static fake_header *header(void) { return (fake_header *)g_map; }

static fake_record *record(unsigned int index) {
    return (fake_record *)((char *)g_map + sizeof(fake_header)) + index;
}

/* Map the state file; an NVML return code. */
static int map_state(void) {
    const char *path = getenv(STATE_ENV);
    if (path == NULL || path[0] == '\0') return NVML_ERROR_DRIVER_NOT_LOADED;
    int fd = open(path, O_RDWR);
    if (fd < 0) return NVML_ERROR_DRIVER_NOT_LOADED;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(fake_header)) {
        close(fd);
        return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return NVML_ERROR_DRIVER_NOT_LOADED;
    const fake_header *h = (const fake_header *)map;
    size_t needed = sizeof(fake_header) + (size_t)h->device_count * sizeof(fake_record);
    if (h->magic != STATE_MAGIC || h->layout_version != LAYOUT_VERSION ||
        h->record_size != sizeof(fake_record) || h->device_count > MAX_DEVICES ||
        (size_t)st.st_size < needed) {
        munmap(map, (size_t)st.st_size);
        return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
    }
    if (h->init_error_code != NVML_SUCCESS) {
        int code = (int)h->init_error_code;
        munmap(map, (size_t)st.st_size);
        return code;
    }
    g_map = map;
    g_map_size = (size_t)st.st_size;
    return NVML_SUCCESS;
}

/* The record behind a handle, or an NVML return code in *ret. */
static fake_record *lookup(nvmlDevice_t device, int *ret) {
    if (g_map == NULL) {
        *ret = NVML_ERROR_UNINITIALIZED;
        return NULL;
    }
    if (device < g_devices || device >= g_devices + MAX_DEVICES ||
        device->index >= header()->device_count) {
        *ret = NVML_ERROR_INVALID_ARGUMENT;
        return NULL;
    }
    fake_record *r = record(device->index);
    *ret = (int)r->error_code;
    return *ret == NVML_SUCCESS ? r : NULL;
}

#define DEVICE_OR_RETURN(r, device)        \
    int ret_;                              \
    fake_record *r = lookup(device, &ret_); \
    if (r == NULL) return ret_

static int copy_string(char *dst, unsigned int length, const char *src, size_t src_size) {
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strnlen(src, src_size);
    if (length < n + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return NVML_SUCCESS;
}

/* ---------- init / shutdown / errors ---------- */

EXPORT int nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&g_lock);
    int ret = NVML_SUCCESS;
    if (g_refcount == 0) ret = map_state();
    if (ret == NVML_SUCCESS) g_refcount++;
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

EXPORT int nvmlShutdown(void) {
    pthread_mutex_lock(&g_lock);
    int ret = NVML_SUCCESS;
    if (g_refcount == 0) {
        ret = NVML_ERROR_UNINITIALIZED;
    } else if (--g_refcount == 0) {
        munmap(g_map, g_map_size);
        g_map = NULL;
        g_map_size = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT const char *nvmlErrorString(int result) {
    switch (result) {
        case NVML_SUCCESS: return "Success";
        case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
        case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
        case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
        case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case NVML_ERROR_NOT_FOUND: return "Not Found";
        case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
        case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
        case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
            return "RM has detected an NVML/RM version mismatch.";
        case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
        default: return "Unknown Error";
    }
}

/* ---------- system ---------- */

EXPORT int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (g_map == NULL) return NVML_ERROR_UNINITIALIZED;
    return copy_string(version, length, header()->driver_version,
                       sizeof(header()->driver_version));
}

EXPORT int nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    if (g_map == NULL) return NVML_ERROR_UNINITIALIZED;
    return copy_string(version, length, header()->nvml_version, sizeof(header()->nvml_version));
}

/* ---------- enumeration and identity ---------- */

EXPORT int nvmlDeviceGetCount_v2(unsigned int *count) {
    if (g_map == NULL) return NVML_ERROR_UNINITIALIZED;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = header()->device_count;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (g_map == NULL) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= header()->device_count) return NVML_ERROR_INVALID_ARGUMENT;
    g_devices[index].index = index;
    *device = &g_devices[index];
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    DEVICE_OR_RETURN(r, device);
    (void)r;
    if (index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_OR_RETURN(r, device);
    return copy_string(name, length, r->name, sizeof(r->name));
}

EXPORT int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_OR_RETURN(r, device);
    return copy_string(uuid, length, r->uuid, sizeof(r->uuid));
}

EXPORT int nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length) {
    DEVICE_OR_RETURN(r, device);
    return copy_string(serial, length, r->serial, sizeof(r->serial));
}

/* ---------- telemetry ---------- */

EXPORT int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_OR_RETURN(r, device);
    if (utilization == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    utilization->gpu = r->util_gpu_pct;
    utilization->memory = r->util_memory_pct;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_OR_RETURN(r, device);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t used = r->memory_used_bytes;
    uint64_t total = r->memory_total_bytes;
    memory->total = total;
    memory->used = used < total ? used : total;
    memory->free = total - memory->used;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    DEVICE_OR_RETURN(r, device);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != MEMORY_V2_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    uint64_t used = r->memory_used_bytes;
    uint64_t total = r->memory_total_bytes;
    memory->total = total;
    memory->reserved = 0;
    memory->used = used < total ? used : total;
    memory->free = total - memory->used;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    DEVICE_OR_RETURN(r, device);
    if (temp == NULL || sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = r->temperature_c;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power_mw) {
    DEVICE_OR_RETURN(r, device);
    if (power_mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *power_mw = r->demand_mw < r->limit_mw ? r->demand_mw : r->limit_mw;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock_mhz) {
    DEVICE_OR_RETURN(r, device);
    if (clock_mhz == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    switch (type) {
        case NVML_CLOCK_GRAPHICS: *clock_mhz = r->clock_graphics_mhz; return NVML_SUCCESS;
        case NVML_CLOCK_SM: *clock_mhz = r->clock_sm_mhz; return NVML_SUCCESS;
        case NVML_CLOCK_MEM: *clock_mhz = r->clock_memory_mhz; return NVML_SUCCESS;
        default: return NVML_ERROR_NOT_SUPPORTED;
    }
}

/* ---------- power limits [mW] ---------- */

EXPORT int nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit_mw) {
    DEVICE_OR_RETURN(r, device);
    if (limit_mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *limit_mw = r->limit_mw;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit_mw) {
    return nvmlDeviceGetPowerManagementLimit(device, limit_mw);
}

EXPORT int nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device,
                                                        unsigned int *min_limit_mw,
                                                        unsigned int *max_limit_mw) {
    DEVICE_OR_RETURN(r, device);
    if (min_limit_mw == NULL || max_limit_mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *min_limit_mw = r->min_limit_mw;
    *max_limit_mw = r->max_limit_mw;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device,
                                                    unsigned int *limit_mw) {
    DEVICE_OR_RETURN(r, device);
    if (limit_mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *limit_mw = r->default_limit_mw;
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceSetPowerManagementLimit(nvmlDevice_t device, unsigned int limit_mw) {
    DEVICE_OR_RETURN(r, device);
    if (r->set_error_code != NVML_SUCCESS) return (int)r->set_error_code;
    if (limit_mw < r->min_limit_mw || limit_mw > r->max_limit_mw)
        return NVML_ERROR_INVALID_ARGUMENT;
    r->limit_mw = limit_mw;
    return NVML_SUCCESS;
}

/* ---------- layout probes for the Python side (not NVML) ---------- */

EXPORT unsigned int hcpFakeNvmlLayoutVersion(void) { return LAYOUT_VERSION; }
EXPORT unsigned int hcpFakeNvmlHeaderSize(void) { return (unsigned int)sizeof(fake_header); }
EXPORT unsigned int hcpFakeNvmlRecordSize(void) { return (unsigned int)sizeof(fake_record); }
EXPORT unsigned int hcpFakeNvmlMaxDevices(void) { return MAX_DEVICES; }
