// The shop: the cart (localStorage, needed for the shop to work, so it needs no consent),
// and the Segment e-commerce v2 events its controls send through the tracker.
(function () {
  "use strict";
  var CART_KEY = "retarget_shop_cart";
  var tracker = window.RetargetTracker;

  function productOf(element) {
    var card = element.closest(".product");
    var data = card.dataset;
    return {
      product_id: data.productId,
      sku: data.sku,
      name: data.name,
      price: Number(data.price),
      currency: "USD",
      quantity: 1,
      url: data.url,
      image_url: data.imageUrl,
    };
  }

  function loadCart() {
    try {
      var items = JSON.parse(window.localStorage.getItem(CART_KEY) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return []; // a cart someone edited by hand: start a new one
    }
  }

  function saveCart(items) {
    window.localStorage.setItem(CART_KEY, JSON.stringify(items));
    showCart(items);
  }

  function total(items) {
    var sum = items.reduce(function (acc, item) { return acc + item.price * item.quantity; }, 0);
    return Math.round(sum * 100) / 100;
  }

  function money(amount) {
    return "$" + amount.toFixed(2);
  }

  function showCart(items) {
    var list = document.querySelector('[data-testid="cart-items"]');
    list.replaceChildren.apply(
      list,
      items.map(function (item) {
        var row = document.createElement("li");
        row.textContent = item.quantity + " × " + item.name + " — " + money(item.price * item.quantity);
        return row;
      })
    );
    var count = items.reduce(function (acc, item) { return acc + item.quantity; }, 0);
    document.querySelector('[data-testid="cart-count"]').textContent = "Cart: " + count;
    document.querySelector('[data-testid="cart-total"]').textContent = money(total(items));
    document.querySelector('[data-testid="checkout"]').disabled = items.length === 0;
  }

  function addToCart(product) {
    var items = loadCart();
    var line = items.find(function (item) { return item.product_id === product.product_id; });
    if (line) line.quantity += 1;
    else items.push(product);
    saveCart(items);
    tracker.track("Product Added", product);
  }

  function say(testId, text) {
    var note = document.querySelector('[data-testid="' + testId + '"]');
    note.textContent = text;
    note.hidden = false;
  }

  function giveEmail(email) {
    var items = loadCart();
    tracker.identify(email, { email: email });
    if (items.length) {
      tracker.track("Checkout Started", { value: total(items), currency: "USD", products: items });
      say("email-note", "Thanks! Your cart is saved for " + email + ".");
    } else {
      tracker.track("Signed Up", { method: "email form" });
      say("email-note", "Thanks! You are signed up as " + email + ".");
    }
  }

  function randomHex(bytes) {
    // getRandomValues, not randomUUID: the shop may be served over plain http on a LAN address
    var values = window.crypto.getRandomValues(new Uint8Array(bytes));
    return Array.from(values, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function checkout() {
    var items = loadCart();
    if (!items.length) return;
    var amount = total(items);
    var orderId = "o-" + randomHex(6);
    tracker.track("Order Completed", {
      order_id: orderId,
      revenue: amount,
      total: amount,
      currency: "USD",
      products: items,
    });
    saveCart([]);
    say("order-note", "Order " + orderId + " placed: " + money(amount) + ". Thank you!");
  }

  document.querySelectorAll('[data-testid="add-to-cart"]').forEach(function (button) {
    button.addEventListener("click", function () { addToCart(productOf(button)); });
  });
  document.querySelectorAll('[data-testid="product-details"]').forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (details.open) tracker.track("Product Viewed", productOf(details));
    });
  });
  document.querySelector('[data-testid="email-form"]').addEventListener("submit", function (event) {
    event.preventDefault();
    var input = event.target.querySelector('input[type="email"]');
    if (input.checkValidity()) giveEmail(input.value.trim());
  });
  document.querySelector('[data-testid="checkout"]').addEventListener("click", checkout);

  showCart(loadCart());
  tracker.page();
})();
