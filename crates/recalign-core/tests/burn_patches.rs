//! The two Burn patches the workspace builds with, against float64 on the host: Flex's
//! vectorised exp in place of libm's (`vendor/burn-flex/PATCHED.md`), which every softmax,
//! sigmoid (SiLU) and log-softmax of the model goes through, and autodiff's one-op softmax
//! (`vendor/burn-autodiff/PATCHED.md`), which every attention layer's gradient goes through. The
//! bounds are the f32 rounding of the result plus the kernel's own one ulp, relative, so no
//! CPU's bits are blessed.

use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

/// Inputs from -110 to 90: subnormal and overflowing results included, and a length that is
/// no multiple of any vector width (the kernels' scalar tails).
fn inputs() -> Vec<f32> {
    (0..200_003).map(|i| -110.0 + i as f32 * 1e-3).collect()
}

fn read(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec().expect("f32 data")
}

fn close(got: f32, want: f64, rel: f64) -> bool {
    if want.is_infinite() {
        return got.is_infinite();
    }
    // Below the smallest normal f32 only absolute spacing is meaningful.
    (got as f64 - want).abs() <= rel * want.abs() + f32::MIN_POSITIVE as f64
}

#[test]
fn exp_and_sigmoid_are_within_two_ulps_of_float64() {
    let device = Device::flex();
    let x = inputs();
    let t = Tensor::<1>::from_data(TensorData::new(x.clone(), [x.len()]), &device);
    // A shared tensor takes the copying path, a unique one the in-place path: both are checked.
    let shared = read(t.clone().exp());
    let unique = read(t.clone().mul_scalar(1.0).exp());
    let sig = read(sigmoid(t));
    for (i, &v) in x.iter().enumerate() {
        let want = (v as f64).exp();
        let want = if want > f32::MAX as f64 {
            f64::INFINITY
        } else {
            want
        };
        assert!(
            close(shared[i], want, 2.4e-7),
            "exp({v}) = {}, want {want}",
            shared[i]
        );
        assert_eq!(
            shared[i].to_bits(),
            unique[i].to_bits(),
            "exp({v}) differs by path"
        );
        let want = 1.0 / (1.0 + (-(v as f64)).exp());
        assert!(
            close(sig[i], want, 3.6e-7),
            "sigmoid({v}) = {}, want {want}",
            sig[i]
        );
    }
    let special = Tensor::<1>::from_data(
        TensorData::new(vec![f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -1e9], [4]),
        &device,
    );
    let e = read(special.exp());
    assert!(
        e[0].is_nan() && e[1] == 0.0 && e[2] == f32::INFINITY && e[3] == 0.0,
        "{e:?}"
    );
}

#[test]
fn softmax_and_log_softmax_of_attention_like_rows_match_float64() {
    let device = Device::flex();
    // Rows of 333 scores with masked entries (-1e9), as attention's are.
    let (rows, cols) = (37, 333);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| {
            if (i % cols) > 200 + i / cols {
                -1e9
            } else {
                ((i * 7919) % 1000) as f32 * 0.02 - 10.0
            }
        })
        .collect();
    let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, cols]), &device);
    let p: Vec<f32> = softmax(t.clone(), 1).into_data().try_to_vec().expect("f32");
    let lp: Vec<f32> = log_softmax(t, 1).into_data().try_to_vec().expect("f32");
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (c, &v) in row.iter().enumerate() {
            let want = (v as f64 - max).exp() / sum;
            let got = p[r * cols + c];
            // `v - max` is rounded to f32 before the exp: its absolute error (at most half an
            // ulp of it; the bound allows a whole one) is that much relative error after it.
            let rel = 1e-6 + (v as f64 - max).abs() * f64::from(f32::EPSILON);
            assert!(
                close(got, want, rel),
                "softmax[{r}, {c}] = {got}, want {want}"
            );
            if v > -1e8 {
                let want = v as f64 - max - sum.ln();
                let got = lp[r * cols + c] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "log_softmax[{r}, {c}]"
                );
            }
        }
    }
}

#[test]
fn softmax_gradient_under_autodiff_is_the_jacobian_product() {
    let device = Device::flex().autodiff();
    let (rows, cols) = (5, 67);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
        .collect();
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 104_729) % 997) as f32 * 0.002 - 1.0)
        .collect();
    let xt =
        Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, cols]), &device).require_grad();
    let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [rows, cols]), &device);
    // Softmax of the last and of the first dimension: the patch handles any `dim`.
    let loss = (softmax(xt.clone(), 1) * wt.clone()).sum() + (softmax(xt.clone(), 0) * wt).sum();
    let grads = loss.backward();
    let g: Vec<f32> = xt
        .grad(&grads)
        .expect("x takes part in the loss")
        .into_data()
        .try_to_vec()
        .expect("f32");
    // d/dx_k sum_i w_i y_i = y_k (w_k - sum_i w_i y_i), per row (dim 1) and per column (dim 0).
    let mut want = vec![0f64; rows * cols];
    let lines = |along_rows: bool| -> Vec<Vec<usize>> {
        if along_rows {
            (0..rows)
                .map(|r| (0..cols).map(|c| r * cols + c).collect())
                .collect()
        } else {
            (0..cols)
                .map(|c| (0..rows).map(|r| r * cols + c).collect())
                .collect()
        }
    };
    for along_rows in [true, false] {
        for line in lines(along_rows) {
            let max = line.iter().map(|&i| x[i] as f64).fold(f64::MIN, f64::max);
            let sum: f64 = line.iter().map(|&i| (x[i] as f64 - max).exp()).sum();
            let y: Vec<f64> = line
                .iter()
                .map(|&i| (x[i] as f64 - max).exp() / sum)
                .collect();
            let dot: f64 = line.iter().zip(&y).map(|(&i, yi)| w[i] as f64 * yi).sum();
            for (&i, yi) in line.iter().zip(&y) {
                want[i] += yi * (w[i] as f64 - dot);
            }
        }
    }
    for (i, (&got, want)) in g.iter().zip(&want).enumerate() {
        // Each term is a product of values in [0, 1] and [-2, 2] summed over at most 67: a few
        // f32 roundings of values below 2.
        assert!(
            (got as f64 - want).abs() <= 2e-6,
            "dx[{i}] = {got}, want {want}"
        );
    }
}
