/*
 * huber.cpp - an example plugin written in C++17 (docs/plugins.md).
 *
 * Provides
 *   loss  "huber":    l(x0) = sum_j h(x0_j - target), h(r) = r^2 / 2 for |r| <= delta,
 *                     delta (|r| - delta / 2) beyond (the gradient is r, clipped to
 *                     +-delta); config "target=T,delta=D" (defaults 0 and 1);
 *   model "gaussian": the exact denoiser of N(mean 1, var I) in dim dimensions, made with
 *                     lgd_model_create_gmm(); config "dim=N,mean=M,var=V" (dim required,
 *                     mean 0 and var 1 by default).
 *
 * The C++ side throws (a config it cannot parse, std::bad_alloc, a liblgd call that
 * failed); nothing may unwind into liblgd, which is C. So every function liblgd calls
 * (the extern "C" entry point, the create functions, the loss's eval and destroy
 * callbacks) is noexcept and runs its body through guarded(), which catches every
 * exception and reports its what() text with lgd_context_set_callback_error(): the host
 * sees LGD_ERR_CALLBACK with that text, never a crash.
 */
#include <lgd/lgd.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Runs f(); an exception becomes the context's callback error and the return value 1.
template <typename F>
int32_t guarded(lgd_context *ctx, const char *where, F &&f) noexcept
{
    try {
        f();
        return 0;
    } catch (const std::exception &e) {
        lgd_context_set_callback_error(ctx, e.what());
    } catch (...) {
        lgd_context_set_callback_error(ctx, (std::string(where) + ": unknown exception").c_str());
    }
    return 1;
}

// "key=value,key=value" -> map; throws std::invalid_argument on a malformed item, a
// repeated key or a key outside `allowed`.
std::map<std::string, std::string> parse_config(const std::string &who, const std::string &text,
                                                const std::vector<std::string> &allowed)
{
    std::map<std::string, std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find(',', pos);
        if (end == std::string::npos)
            end = text.size();
        std::string item = text.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty())
            continue;
        std::size_t eq = item.find('=');
        if (eq == std::string::npos)
            throw std::invalid_argument(who + ": '" + item + "' is not KEY=VALUE");
        std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        bool known = false;
        for (const std::string &a : allowed)
            known = known || a == key;
        if (!known)
            throw std::invalid_argument(who + ": unknown key '" + key + "'");
        if (!out.emplace(key, value).second)
            throw std::invalid_argument(who + ": " + key + " is given twice");
    }
    return out;
}

double number(const std::string &who, const std::map<std::string, std::string> &config,
              const std::string &key, double fallback)
{
    auto it = config.find(key);
    if (it == config.end())
        return fallback;
    std::size_t used = 0;
    double v = 0.0;
    try {
        v = std::stod(it->second, &used);
    } catch (const std::exception &) {
        used = 0; // std::stod's own what() ("stod") says too little
    }
    if (used == 0 || used != it->second.size() || !std::isfinite(v))
        throw std::invalid_argument(who + ": " + key + " '" + it->second +
                                    "' is not a finite number");
    return v;
}

class Huber {
public:
    Huber(lgd_context *ctx, double target, double delta)
        : ctx_(ctx), target_(target), delta_(delta)
    {
        if (!(delta > 0.0))
            throw std::domain_error("huber: delta must be > 0, not " + std::to_string(delta));
    }

    lgd_context *context() const { return ctx_; }

    void eval(const float *x, int64_t rows, int64_t dim, float *loss, float *grad) const
    {
        for (int64_t r = 0; r < rows; ++r) {
            double sum = 0.0;
            for (int64_t j = 0; j < dim; ++j) {
                double d = static_cast<double>(x[r * dim + j]) - target_;
                double a = std::fabs(d);
                sum += a <= delta_ ? 0.5 * d * d : delta_ * (a - 0.5 * delta_);
                if (grad)
                    grad[r * dim + j] =
                        static_cast<float>(a <= delta_ ? d : (d > 0 ? delta_ : -delta_));
            }
            loss[r] = static_cast<float>(sum);
        }
    }

private:
    lgd_context *ctx_;
    double target_, delta_;
};

// The functions liblgd calls through the tables and callbacks below. They have C++
// linkage inside this unnamed namespace (only the entry point is looked up by name, so
// only it is extern "C"); what matters is that none of them lets an exception out.

int32_t huber_eval(void *user, const float *x, int64_t batch, int64_t n,
                              int64_t dim, float *loss, float *grad) noexcept
{
    const Huber *h = static_cast<const Huber *>(user);
    return guarded(h->context(), "huber: eval", [&] { h->eval(x, batch * n, dim, loss, grad); });
}

void huber_destroy(void *user) noexcept
{
    delete static_cast<Huber *>(user); // ~Huber does not throw
}

int32_t huber_create(lgd_context *ctx, int64_t dim, const char *config,
                                lgd_loss **out_loss) noexcept
{
    *out_loss = nullptr;
    return guarded(ctx, "huber", [&] {
        auto c = parse_config("huber", config, {"target", "delta"});
        auto h = std::make_unique<Huber>(ctx, number("huber", c, "target", 0.0),
                                         number("huber", c, "delta", 1.0));
        lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
        cb.dim = dim;
        cb.eval = huber_eval;
        cb.destroy = huber_destroy;
        cb.user = h.get();
        if (lgd_loss_create_callbacks(ctx, &cb, out_loss) != LGD_OK)
            throw std::runtime_error(std::string("huber: ") + lgd_context_last_error(ctx));
        h.release(); // the loss owns it: huber_destroy deletes it
    });
}

int32_t gaussian_create(lgd_context *ctx, const char *config,
                                   lgd_model **out_model) noexcept
{
    *out_model = nullptr;
    return guarded(ctx, "gaussian", [&] {
        auto c = parse_config("gaussian", config, {"dim", "mean", "var"});
        if (c.find("dim") == c.end())
            throw std::invalid_argument("gaussian: dim=N is required");
        double dim = number("gaussian", c, "dim", 0.0);
        // liblgd checks the upper bound (lgd_model_create_gmm: dim <= 65536)
        if (!(dim >= 1.0 && dim <= 1e9) || dim != std::floor(dim))
            throw std::invalid_argument("gaussian: dim must be a positive integer");
        double var = number("gaussian", c, "var", 1.0);
        if (!(var >= 0.0))
            throw std::invalid_argument("gaussian: var must be >= 0");
        const int64_t d = static_cast<int64_t>(dim);
        std::vector<float> means(static_cast<std::size_t>(d),
                                 static_cast<float>(number("gaussian", c, "mean", 0.0)));
        const float weight = 1.0f, variance = static_cast<float>(var);
        if (lgd_model_create_gmm(ctx, d, 1, &weight, means.data(), &variance,
                                 LGD_COVARIANCE_ISOTROPIC, out_model) != LGD_OK)
            throw std::runtime_error(std::string("gaussian: ") + lgd_context_last_error(ctx));
    });
}

const lgd_plugin_loss losses[] = {
    {"huber", "target=T,delta=D: sum_j huber_delta(x_j - T) (defaults T = 0, D = 1)",
     huber_create},
};
const lgd_plugin_model models[] = {
    {"gaussian", "dim=N,mean=M,var=V: N(M 1, V I) (defaults M = 0, V = 1)", gaussian_create},
};

const lgd_plugin_info info =
    LGD_PLUGIN_INFO_INIT("cxx_example", losses, 1, models, 1);

} // namespace

extern "C" LGD_PLUGIN_EXPORT const lgd_plugin_info *lgd_plugin_entry(void) noexcept
{
    return &info;
}
