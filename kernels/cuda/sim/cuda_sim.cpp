// The CUDA simulator's runtime (the model is described in cuda_sim.h): the fiber scheduler, the
// block barrier and warp collectives, shared memory, guarded allocations and the fault report.
// This file is linked into the library of simulated kernels, whose thread_local storage is
// refilled at each block start, so it must keep no thread_local state of its own.
#include "kernels/cuda/sim/cuda_sim.h"

#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/check.h"

namespace deblur::sim {

namespace detail {
BuiltIns g_builtins;
}  // namespace detail

namespace {

using detail::BlockSync;
using detail::WarpOp;

constexpr size_t kStackBytes = 64 * 1024;
constexpr unsigned kMaxThreads = 1024;
constexpr size_t kMaxDynamicShared = 48 * 1024;  // more needs an opt-in on the GPU
constexpr size_t kMaxBlocks = size_t(1) << 20;   // a bigger grid is a mistake in a test
constexpr unsigned kFullMask = 0xffffffffu;

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_up(size_t value, size_t to) {
  return (value + to - 1) / to * to;
}

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Settings {
  uint64_t seed;
  bool checked;
  uint64_t launches = 0;
};

Settings& settings() {
  static Settings s = [] {
    const char* seed = std::getenv("DEBLUR_SIM_SEED");
    const char* checked = std::getenv("DEBLUR_SIM_CHECKED");
    return Settings{seed ? std::strtoull(seed, nullptr, 0) : 0x5eedull,
                    !(checked && std::strcmp(checked, "0") == 0)};
  }();
  return s;
}

// --- Memory: every simulated device allocation, with its guard pages when checked.
struct Region {
  std::byte* base = nullptr;  // the whole mapping (guards included), or the aligned_alloc block
  size_t mapped = 0;          // bytes mapped; 0 for an unguarded block
  std::byte* user = nullptr;
  size_t bytes = 0;
  const char* what = "";
};

std::mutex g_regions_mutex;
std::map<const std::byte*, Region> g_regions;  // by user pointer

// A user range flush against a trailing guard page, with a guard page before the mapping's data.
// The base is aligned to the largest power of two that divides the size (at most max_align), so
// an array of any element type is aligned and its last element touches the guard.
Region map_guarded(size_t bytes, size_t max_align, const char* what) {
  const size_t page = page_size();
  const size_t data = round_up(std::max<size_t>(bytes, 1), page);
  const size_t mapped = data + 2 * page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return {};
  Region r{static_cast<std::byte*>(p), mapped, nullptr, bytes, what};
  mprotect(r.base, page, PROT_NONE);
  mprotect(r.base + page + data, page, PROT_NONE);
  size_t align = max_align;
  while (align > 1 && bytes % align != 0) align /= 2;
  r.user = r.base + page + data - round_up(bytes, align);
  return r;
}

Region allocate(size_t bytes, size_t max_align, const char* what) {
  Region r;
  if (settings().checked) {
    r = map_guarded(bytes, max_align, what);
  } else {
    void* p = std::aligned_alloc(max_align, round_up(std::max<size_t>(bytes, 1), max_align));
    r = {static_cast<std::byte*>(p), 0, static_cast<std::byte*>(p), bytes, what};
  }
  if (r.user) std::memset(r.user, 0xff, bytes);  // uninitialised memory reads as NaN
  return r;
}

void release(const Region& r) {
  if (r.mapped)
    munmap(r.base, r.mapped);
  else
    std::free(r.base);
}

// The allocation holding [p, p + bytes), if any.
const Region* find_region(const void* p, size_t bytes) {
  const auto* b = static_cast<const std::byte*>(p);
  auto it = g_regions.upper_bound(b);
  if (it == g_regions.begin()) return nullptr;
  --it;
  const Region& r = it->second;
  return b >= r.user && b + bytes <= r.user + r.bytes ? &r : nullptr;
}

// --- Fibers.
enum class Wait : uint8_t { Ready, Block, Warp, Done };

struct Fiber {
  ucontext_t context;
  std::byte* stack = nullptr;  // the mapping: a guard page, then kStackBytes
  Uint3 thread_idx;
  unsigned linear = 0;
  Wait wait = Wait::Ready;
  // What it waits at: the call site, and the barrier's or collective's operands.
  Site where;
  BlockSync block_kind = BlockSync::Sync;
  WarpOp warp_op = WarpOp::SyncWarp;
  unsigned mask = 0, arg = 0;
  int width = 0;
  uint64_t value = 0;   // posted by the lane (value or predicate)
  uint64_t result = 0;  // written by the scheduler when the barrier or collective completes

  Fiber() {
    void* p = mmap(nullptr, kStackBytes + page_size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    DEBLUR_CHECK(p != MAP_FAILED, "deblur sim: cannot map a fiber stack");
    stack = static_cast<std::byte*>(p);
    mprotect(stack, page_size(), PROT_NONE);  // a stack overflow faults instead of corrupting
    getcontext(&context);  // once: later blocks only makecontext this context again
  }
  ~Fiber() { munmap(stack, kStackBytes + page_size()); }
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
};

// The thread_local block of the library holding the kernel: its static __shared__ arrays.
struct TlsBlock {
  std::byte* data = nullptr;
  size_t bytes = 0;
};

struct Launch {
  const char* name = "";
  const char* file = "";
  int line = 0;
  Dim3 grid, block;
  unsigned threads = 0;
  detail::Invoke invoke = nullptr;
  const void* call = nullptr;
  Region dynamic_shared;
  TlsBlock tls;
  Uint3 block_idx;
  Fiber* current = nullptr;
  ucontext_t scheduler;
  std::string failure;  // set by a fiber that broke a rule at its call
  std::exception_ptr exception;
};

std::mutex g_launch_mutex;
std::vector<std::unique_ptr<Fiber>> g_fibers;  // the pool, grown to the largest block seen
Launch* g_launch = nullptr;                    // the running launch, for the fault handler

std::string str(Uint3 v) {
  return ::deblur::detail::concat("(", v.x, ",", v.y, ",", v.z, ")");
}

std::string str(Site where) {
  return ::deblur::detail::concat(where.file, ":", where.line);
}

bool same_site(Site a, Site b) {
  return a.line == b.line && std::strcmp(a.file, b.file) == 0;
}

const char* name_of(BlockSync kind) {
  switch (kind) {
    case BlockSync::Sync:
      return "__syncthreads";
    case BlockSync::Count:
      return "__syncthreads_count";
    case BlockSync::And:
      return "__syncthreads_and";
    case BlockSync::Or:
      return "__syncthreads_or";
  }
  return "?";
}

const char* name_of(WarpOp op) {
  switch (op) {
    case WarpOp::SyncWarp:
      return "__syncwarp";
    case WarpOp::Shfl:
      return "__shfl_sync";
    case WarpOp::ShflUp:
      return "__shfl_up_sync";
    case WarpOp::ShflDown:
      return "__shfl_down_sync";
    case WarpOp::ShflXor:
      return "__shfl_xor_sync";
    case WarpOp::Ballot:
      return "__ballot_sync";
    case WarpOp::Any:
      return "__any_sync";
    case WarpOp::All:
      return "__all_sync";
  }
  return "?";
}

std::string launched(const Launch& l) {
  return ::deblur::detail::concat("deblur sim: kernel '", l.name, "' (launched at ", l.file, ":",
                                  l.line, ")");
}

std::string where_launched(const Launch& l) {
  return launched(l) + ", block " + str(l.block_idx);
}

std::string describe_wait(const Fiber& f) {
  switch (f.wait) {
    case Wait::Done:
      return "has exited";
    case Wait::Block:
      return ::deblur::detail::concat("waits at ", name_of(f.block_kind), " at ", str(f.where));
    case Wait::Warp:
      return ::deblur::detail::concat("waits at ", name_of(f.warp_op), " with mask 0x", std::hex,
                                      f.mask, std::dec, " at ", str(f.where));
    case Wait::Ready:
      break;
  }
  return "is running";
}

Launch& running(const char* what) {
  if (!g_launch || !g_launch->current)
    throw Error(::deblur::detail::concat("deblur sim: ", what, " called outside a kernel"));
  return *g_launch;
}

// Suspends the running fiber; the scheduler resumes it when its barrier or collective completes.
void yield(Launch& l) {
  swapcontext(&l.current->context, &l.scheduler);
}

// Ends the launch from inside a fiber: the scheduler throws, and the fiber is never resumed.
[[noreturn]] void fail_in_fiber(Launch& l, std::string message) {
  l.failure = ::deblur::detail::concat("thread ", str(l.current->thread_idx), ": ", message);
  std::string().swap(message);  // this frame is never unwound: free its string now
  yield(l);
  std::abort();
}

void fiber_main() {
  Launch& l = *g_launch;
  try {
    l.invoke(l.call);
  } catch (...) {
    if (!l.exception) l.exception = std::current_exception();
  }
  l.current->wait = Wait::Done;
}  // uc_link returns to the scheduler

void resume(Launch& l, Fiber& f) {
  l.current = &f;
  detail::g_builtins.thread_idx = f.thread_idx;
  f.wait = Wait::Ready;
  swapcontext(&l.scheduler, &f.context);
  l.current = nullptr;
  if (!l.failure.empty()) throw Error(where_launched(l) + ", " + l.failure);
  if (l.exception) std::rethrow_exception(l.exception);
}

// --- Warp collectives: resolved when no thread can run.

// The source lane of a shuffle, by PTX's shfl.sync rule (width w splits the warp into segments;
// a source past the lane's segment, or before it for up, gives the lane its own value).
unsigned shuffle_source(WarpOp op, unsigned lane, unsigned arg, int width) {
  const unsigned segment_mask = 32u - static_cast<unsigned>(width);  // high lane bits kept
  const unsigned min_lane = lane & segment_mask;
  const unsigned max_lane = min_lane | (31u & ~segment_mask);
  const unsigned b = arg & 31u;
  switch (op) {
    case WarpOp::Shfl:
      return min_lane | (b & ~segment_mask);
    case WarpOp::ShflUp:
      return lane >= min_lane + b ? lane - b : lane;
    case WarpOp::ShflDown:
      return lane + b <= max_lane ? lane + b : lane;
    case WarpOp::ShflXor:
      return (lane ^ b) <= max_lane ? lane ^ b : lane;
    default:
      return lane;
  }
}

// Whether lane f takes part in the collective the leader waits at: the same operation with the
// same mask. The call sites may differ: since sm_70, diverged lanes of a warp can meet at
// different __syncwarp or shuffle instructions.
bool joins(const Fiber& f, const Fiber& leader) {
  return f.wait == Wait::Warp && f.warp_op == leader.warp_op && f.mask == leader.mask;
}

// Completes the collective that lane `first` of the warp at `base` waits at, if every lane of its
// mask waits at the same one; returns whether it did (its lanes are then added to `ready`).
bool complete_collective(unsigned base, unsigned first, std::vector<unsigned>& ready) {
  const Fiber& leader = *g_fibers[base + first];
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(leader.mask >> lane & 1u)) continue;
    const Fiber& f = *g_fibers[base + lane];
    if (!joins(f, leader)) return false;
  }
  uint64_t ballot = 0;
  for (unsigned lane = 0; lane < 32; ++lane)
    if (leader.mask >> lane & 1u && g_fibers[base + lane]->value) ballot |= uint64_t(1) << lane;
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(leader.mask >> lane & 1u)) continue;
    Fiber& f = *g_fibers[base + lane];
    switch (f.warp_op) {
      case WarpOp::SyncWarp:
        f.result = 0;
        break;
      case WarpOp::Ballot:
      case WarpOp::Any:
      case WarpOp::All:
        f.result = ballot;
        break;
      default: {
        const unsigned src = shuffle_source(f.warp_op, lane, f.arg, f.width);
        // Reading a lane that does not take part is undefined on the GPU: poison.
        f.result = leader.mask >> src & 1u ? g_fibers[base + src]->value : ~uint64_t(0);
      }
    }
    f.wait = Wait::Ready;
    ready.push_back(base + lane);
  }
  return true;
}

// The error for a collective that can never complete: the first lane of its mask that is not
// there.
std::string stuck_collective(unsigned base, unsigned first) {
  const Fiber& leader = *g_fibers[base + first];
  std::string why;
  for (unsigned lane = 0; lane < 32 && why.empty(); ++lane) {
    if (!(leader.mask >> lane & 1u)) continue;
    const Fiber& f = *g_fibers[base + lane];
    if (!joins(f, leader))
      why = ::deblur::detail::concat("lane ", lane, " (thread ", str(f.thread_idx), ") ",
                                     describe_wait(f));
  }
  return ::deblur::detail::concat(name_of(leader.warp_op), " at ", str(leader.where),
                                  " with mask 0x", std::hex, leader.mask, std::dec, " in warp ",
                                  base / 32, " can never complete: ", why);
}

// --- The block barrier: released when every thread waits at the same one.
void release_block(Launch& l, std::vector<unsigned>& ready) {
  const unsigned n = l.threads;
  unsigned exited = 0;
  const Fiber* waiting = nullptr;
  for (unsigned t = 0; t < n; ++t) {
    const Fiber& f = *g_fibers[t];
    if (f.wait == Wait::Done) {
      ++exited;
    } else if (!waiting) {
      waiting = &f;
    } else if (!same_site(f.where, waiting->where)) {
      throw Error(::deblur::detail::concat(where_launched(l),
                                           ": threads wait at different barriers: thread ",
                                           str(waiting->thread_idx), " ", describe_wait(*waiting),
                                           ", thread ", str(f.thread_idx), " ", describe_wait(f)));
    }
  }
  if (exited > 0) {
    std::string which;
    unsigned listed = 0;
    for (unsigned t = 0; t < n && listed < 4; ++t)
      if (g_fibers[t]->wait == Wait::Done)
        which += (listed++ ? ", " : "") + str(g_fibers[t]->thread_idx);
    throw Error(::deblur::detail::concat(
        where_launched(l), ": ", name_of(waiting->block_kind), " at ", str(waiting->where),
        " was reached by ", n - exited, " of ", n, " threads; ", exited,
        " exited without reaching it (threads ", which, exited > listed ? ", ..." : "", ")"));
  }
  int count = 0;
  for (unsigned t = 0; t < n; ++t) count += g_fibers[t]->value != 0;
  const BlockSync kind = waiting->block_kind;
  const int result = kind == BlockSync::Count ? count
                     : kind == BlockSync::And ? count == static_cast<int>(n)
                     : kind == BlockSync::Or  ? count > 0
                                              : 0;
  for (unsigned t = 0; t < n; ++t) {
    g_fibers[t]->result = static_cast<uint64_t>(result);
    g_fibers[t]->wait = Wait::Ready;
    ready.push_back(t);
  }
}

void shuffle(std::vector<unsigned>& order, std::mt19937_64& rng) {
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
}

void run_block(Launch& l, std::mt19937_64& rng) {
  detail::g_builtins.block_idx = l.block_idx;
  // Fresh shared memory: what a block reads before writing is NaN, never a previous block's data.
  if (l.tls.data) std::memset(l.tls.data, 0xff, l.tls.bytes);
  if (l.dynamic_shared.user) std::memset(l.dynamic_shared.user, 0xff, l.dynamic_shared.bytes);

  const unsigned n = l.threads;
  std::vector<unsigned> ready(n);
  for (unsigned t = 0; t < n; ++t) {
    Fiber& f = *g_fibers[t];
    f.linear = t;
    f.thread_idx = {t % l.block.x, t / l.block.x % l.block.y, t / (l.block.x * l.block.y)};
    f.wait = Wait::Ready;
    f.context.uc_stack.ss_sp = f.stack + page_size();
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &l.scheduler;
    makecontext(&f.context, fiber_main, 0);
    ready[t] = t;
  }
  for (;;) {
    shuffle(ready, rng);
    for (unsigned t : ready) resume(l, *g_fibers[t]);
    ready.clear();
    // No thread can run: complete what can be completed, or report what never will.
    bool live = false, at_warp = false;
    for (unsigned base = 0; base < n; base += 32) {
      const unsigned lanes = std::min(32u, n - base);
      for (unsigned lane = 0; lane < lanes; ++lane) {
        const Fiber& f = *g_fibers[base + lane];
        live |= f.wait != Wait::Done;
        if (f.wait != Wait::Warp) continue;
        at_warp = true;
        complete_collective(base, lane, ready);
      }
    }
    if (!ready.empty()) continue;
    if (!live) return;
    if (at_warp) {
      for (unsigned t = 0; t < n; ++t)
        if (g_fibers[t]->wait == Wait::Warp)
          throw Error(where_launched(l) + ": " + stuck_collective(t / 32 * 32, t % 32));
    }
    release_block(l, ready);
  }
}

// --- Static shared memory: the thread_local block of the library that holds the kernel.
TlsBlock kernel_tls(const Launch& l, const void* kernel) {
  struct Search {
    uintptr_t code = 0;
    bool found = false;
    bool main_program = false;
    size_t initialised = 0;
    TlsBlock tls;
  } search;
  search.code = reinterpret_cast<uintptr_t>(kernel);
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* p) {
        auto& s = *static_cast<Search*>(p);
        const ElfW(Phdr)* tls = nullptr;
        bool mine = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_LOAD && s.code >= start && s.code < start + ph.p_memsz) mine = true;
          if (ph.p_type == PT_TLS) tls = &ph;
        }
        if (!mine) return 0;
        s.found = true;
        s.main_program = info->dlpi_name == nullptr || info->dlpi_name[0] == '\0';
        if (tls) {
          s.initialised = tls->p_filesz;
          s.tls = {static_cast<std::byte*>(info->dlpi_tls_data), tls->p_memsz};
        }
        return 1;
      },
      &search);
  DEBLUR_CHECK(search.found, launched(l), ": the kernel's code is in no loaded module");
  // Refused even when it has no thread_local storage yet: whether it has any depends on what
  // else the program links, which should not decide whether a kernel runs.
  DEBLUR_CHECK(!search.main_program, launched(l),
               ": the kernel is in the main program; build kernels into a shared library, whose "
               "thread_local storage the simulator refills as their __shared__ memory (see "
               "cuda_sim.h)");
  if (search.tls.bytes == 0) return {};  // no static __shared__ in that library
  DEBLUR_CHECK(search.tls.data, launched(l),
               ": the kernel's library has no thread_local block on this thread yet (loaded "
               "with dlopen?)");
  DEBLUR_CHECK(search.initialised == 0, launched(l),
               ": the kernel's library has initialised thread_local data, which the per-block "
               "refill of its __shared__ arrays would overwrite (see cuda_sim.h)");
  return search.tls;
}

// --- Faults during a launch (checked mode).

// Formats into a fixed buffer: only async-signal-safe calls in the handler.
struct Message {
  char text[1024];
  size_t size = 0;
  void add(const char* s) {
    while (*s && size < sizeof(text)) text[size++] = *s++;
  }
  void add(uint64_t v, unsigned base = 10) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v);
    while (n && size < sizeof(text)) text[size++] = digits[--n];
  }
  void emit() const {
    const ssize_t written = write(STDERR_FILENO, text, size);
    (void)written;  // nothing more to do if stderr is gone
  }
  void add(Uint3 v) {
    add("(");
    add(v.x);
    add(",");
    add(v.y);
    add(",");
    add(v.z);
    add(")");
  }
};

void on_fault(int signal_number, siginfo_t* info, void*) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  Message m;
  m.add(signal_number == SIGBUS ? "deblur sim: SIGBUS" : "deblur sim: SIGSEGV");
  m.add(": invalid memory access at 0x");
  m.add(address, 16);
  const Launch* l = g_launch;
  if (l) {
    m.add(" in kernel '");
    m.add(l->name);
    m.add("' (launched at ");
    m.add(l->file);
    m.add(":");
    m.add(static_cast<uint64_t>(l->line));
    m.add("), block ");
    m.add(l->block_idx);
    if (l->current) {
      m.add(", thread ");
      m.add(l->current->thread_idx);
    }
  }
  m.add("\n");
  m.emit();
  // Then what was hit. The allocations are read without their lock (a handler cannot wait for
  // one): the line above is already out should this go wrong.
  Message what;
  const size_t page = page_size();
  if (l && l->current) {
    const auto guard = reinterpret_cast<uintptr_t>(l->current->stack);
    if (address >= guard && address < guard + page) what.add("  a fiber stack overflow (64 KB)\n");
  }
  for (const auto& [user, r] : g_regions) {
    if (!r.mapped) continue;
    const auto begin = reinterpret_cast<uintptr_t>(r.user), end = begin + r.bytes;
    const auto first = reinterpret_cast<uintptr_t>(r.base);
    if (address >= end && address < end + page) {
      what.add("  at byte ");
      what.add(address - begin);
      what.add(" of a ");
      what.add(r.bytes);
      what.add("-byte ");
      what.add(r.what);
      what.add(": past its end\n");
    } else if (address >= first && address < begin && address < first + page) {
      what.add("  before the start of a ");
      what.add(r.bytes);
      what.add("-byte ");
      what.add(r.what);
      what.add("\n");
    }
  }
  what.emit();
  signal(SIGABRT, SIG_DFL);  // no test framework's handler between us and the core dump
  abort();
}

// Installs the fault handler, on a stack of its own, for the duration of a checked launch.
class FaultHandler {
 public:
  FaultHandler() {
    if (!settings().checked) return;
    static std::byte alternate[64 * 1024];
    stack_t ss{};
    ss.ss_sp = alternate;
    ss.ss_size = sizeof(alternate);
    sigaltstack(&ss, &old_stack_);
    struct sigaction action {};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &old_segv_);
    sigaction(SIGBUS, &action, &old_bus_);
    installed_ = true;
  }
  ~FaultHandler() {
    if (!installed_) return;
    sigaction(SIGSEGV, &old_segv_, nullptr);
    sigaction(SIGBUS, &old_bus_, nullptr);
    sigaltstack(&old_stack_, nullptr);
  }
  FaultHandler(const FaultHandler&) = delete;
  FaultHandler& operator=(const FaultHandler&) = delete;

 private:
  bool installed_ = false;
  stack_t old_stack_{};
  struct sigaction old_segv_ {
  }, old_bus_{};
};

void check_config(const Launch& l, size_t shared_bytes) {
  const auto fail = [&](const auto&... why) {
    throw Error(::deblur::detail::concat(launched(l), ": invalid configuration: ", why...));
  };
  const Dim3 g = l.grid, b = l.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (threads == 0 || threads > kMaxThreads || b.x > 1024 || b.y > 1024 || b.z > 64)
    fail("block (", b.x, ",", b.y, ",", b.z, "): at most 1024 threads, (1024,1024,64)");
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    fail("grid (", g.x, ",", g.y, ",", g.z, "): x up to 2^31-1, y and z up to 65535");
  if (uint64_t(g.x) * g.y * g.z > kMaxBlocks)
    fail("grid (", g.x, ",", g.y, ",", g.z, ") has more blocks than the simulator runs");
  if (shared_bytes > kMaxDynamicShared)
    fail(shared_bytes, " bytes of dynamic shared memory: at most ", kMaxDynamicShared);
}

}  // namespace

void set_seed(uint64_t seed) {
  std::lock_guard lock(g_launch_mutex);
  settings().seed = seed;
  settings().launches = 0;
}

void set_checked(bool on) {
  std::lock_guard lock(g_launch_mutex);
  settings().checked = on;
}

bool checked() {
  return settings().checked;
}

namespace detail {

int block_barrier(BlockSync kind, int predicate, Site where) {
  Launch& l = running(name_of(kind));
  Fiber& f = *l.current;
  f.wait = Wait::Block;
  f.block_kind = kind;
  f.where = where;
  f.value = predicate != 0;
  yield(l);
  return static_cast<int>(f.result);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, unsigned arg, int width,
                         Site where) {
  Launch& l = running(name_of(op));
  Fiber& f = *l.current;
  const unsigned lane = f.linear % 32, base = f.linear - lane;
  const unsigned lanes = std::min(32u, l.threads - base);
  const unsigned existing = lanes == 32 ? kFullMask : (1u << lanes) - 1;
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    fail_in_fiber(l, ::deblur::detail::concat(name_of(op), " at ", str(where), ": width ", width,
                                              " is not a power of two up to 32"));
  if (!(mask >> lane & 1u))
    fail_in_fiber(
        l, ::deblur::detail::concat(name_of(op), " at ", str(where), ": mask 0x", std::hex, mask,
                                    std::dec, " does not include the calling lane ", lane));
  if (mask & ~existing)
    fail_in_fiber(l, ::deblur::detail::concat(name_of(op), " at ", str(where), ": mask 0x",
                                              std::hex, mask, std::dec, " names lanes that ",
                                              "do not exist (this warp has ", lanes, " threads)"));
  f.wait = Wait::Warp;
  f.warp_op = op;
  f.mask = mask;
  f.arg = arg;
  f.width = width;
  f.value = value;
  f.where = where;
  yield(l);
  return f.result;
}

void* dynamic_shared_memory() {
  return running("DEBLUR_DYNAMIC_SHARED").dynamic_shared.user;
}

void run_grid(const char* name, const char* file, int line, const void* kernel, Dim3 grid,
              Dim3 block, size_t shared_bytes, Invoke invoke, const void* call) {
  std::lock_guard lock(g_launch_mutex);
  Launch l;
  l.name = name;
  l.file = file;
  l.line = line;
  l.grid = grid;
  l.block = block;
  l.invoke = invoke;
  l.call = call;
  check_config(l, shared_bytes);
  l.threads = block.x * block.y * block.z;
  l.tls = kernel_tls(l, kernel);
  while (g_fibers.size() < l.threads) g_fibers.push_back(std::make_unique<Fiber>());
  l.dynamic_shared = allocate(shared_bytes, 16, "dynamic shared memory");
  DEBLUR_CHECK(l.dynamic_shared.user, launched(l), ": cannot allocate shared memory");
  {
    std::lock_guard regions(g_regions_mutex);
    g_regions[l.dynamic_shared.user] = l.dynamic_shared;
  }
  // Whatever happens, the launch leaves no trace: the next one starts clean.
  struct Cleanup {
    Launch& l;
    ~Cleanup() {
      g_launch = nullptr;
      std::lock_guard regions(g_regions_mutex);
      g_regions.erase(l.dynamic_shared.user);
      release(l.dynamic_shared);
    }
  } cleanup{l};

  detail::g_builtins.block_dim = block;
  detail::g_builtins.grid_dim = grid;
  const uint64_t launch_seed = mix(settings().seed ^ mix(settings().launches++));
  const size_t blocks = size_t(grid.x) * grid.y * grid.z;
  std::vector<size_t> order(blocks);
  for (size_t b = 0; b < blocks; ++b) order[b] = b;
  std::mt19937_64 block_rng(launch_seed);
  for (size_t i = blocks; i > 1; --i) std::swap(order[i - 1], order[block_rng() % i]);

  FaultHandler fault_handler;
  g_launch = &l;
  for (size_t b : order) {
    l.block_idx = {static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                   static_cast<unsigned>(b / (size_t(grid.x) * grid.y))};
    std::mt19937_64 rng(mix(launch_seed ^ b));
    run_block(l, rng);
  }
}

}  // namespace detail
}  // namespace deblur::sim

// --- The runtime API subset.
cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  using namespace deblur::sim;
  const Region r = allocate(bytes, 256, "device allocation");
  if (!r.user) return cudaErrorMemoryAllocation;
  std::lock_guard lock(g_regions_mutex);
  g_regions[r.user] = r;
  *pointer = r.user;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  using namespace deblur::sim;
  if (!pointer) return cudaSuccess;
  std::lock_guard lock(g_regions_mutex);
  const auto it = g_regions.find(static_cast<const std::byte*>(pointer));
  if (it == g_regions.end()) return cudaErrorInvalidValue;
  release(it->second);
  g_regions.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  using namespace deblur::sim;
  if (checked() && bytes > 0) {
    // The device side must lie inside one allocation, as the GPU's would.
    std::lock_guard lock(g_regions_mutex);
    const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_device && !find_region(dst, bytes)) || (src_device && !find_region(src, bytes)))
      return cudaErrorInvalidValue;
  }
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
  if (!pointer) return cudaErrorInvalidValue;
  *pointer = std::malloc(bytes > 0 ? bytes : 1);
  return *pointer ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void* pointer) {
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) {
  using namespace deblur::sim;
  if (checked() && bytes > 0) {
    std::lock_guard lock(g_regions_mutex);
    if (!find_region(pointer, bytes)) return cudaErrorInvalidValue;
  }
  if (bytes > 0) std::memset(pointer, value, bytes);
  return cudaSuccess;
}

struct CUevent_sim {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return cudaErrorInvalidValue;
  *event = new CUevent_sim;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return cudaErrorInvalidValue;
  event->recorded = true;
  event->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end || !start->recorded || !end->recorded) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event ? cudaSuccess : cudaErrorInvalidValue;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
  }
  return "unrecognized error code";
}
