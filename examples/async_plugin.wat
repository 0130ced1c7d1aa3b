;; The plugin of examples/async_plugins.py: prices an order.
;;
;; quote(item, quantity) asks the host for the item's unit price (an async lookup: a
;; Suspending import, so the wasm code is suspended while the host waits), keeps a running
;; total in its memory, and returns quantity * price, with 10% off from 10 items on.
(module
  (import "host" "unit_price" (func $unit_price (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $quotes (export "quotes") (mut i32) (i32.const 0))

  (func (export "quote") (param $item i32) (param $quantity i32) (result i32)
    (local $total i32)
    (local.set $total
      (i32.mul (local.get $quantity) (call $unit_price (local.get $item))))
    (if (i32.ge_u (local.get $quantity) (i32.const 10))
      (then
        (local.set $total
          (i32.sub (local.get $total) (i32.div_u (local.get $total) (i32.const 10))))))
    ;; bookkeeping in linear memory: the sum of all quotes at address 0
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (local.get $total)))
    (global.set $quotes (i32.add (global.get $quotes) (i32.const 1)))
    (local.get $total))
)
